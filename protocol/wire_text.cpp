#include "protocol/wire_text.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/utf8.h"

namespace riposte {

namespace {

namespace pb = google::protobuf;
using FieldDescriptor = pb::FieldDescriptor;

// Applies `rewrite` to every field `is_text` selects, through nested, repeated and map fields.
// `rewrite` returns the new value, or nullopt to leave the field as it is.
using Rewrite = std::function<std::optional<std::string>(const std::string&)>;

bool rewrite_fields(pb::Message& message,
                    const std::function<bool(const FieldDescriptor*)>& is_text,
                    const Rewrite& rewrite) {
  const auto* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  bool changed = false;
  for (const auto* field : fields) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i)
          changed |= rewrite_fields(*reflection->MutableRepeatedMessage(&message, field, i),
                                    is_text, rewrite);
      } else {
        changed |= rewrite_fields(*reflection->MutableMessage(&message, field), is_text, rewrite);
      }
      continue;
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_STRING || !is_text(field)) continue;
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        if (auto value = rewrite(reflection->GetRepeatedString(message, field, i))) {
          reflection->SetRepeatedString(&message, field, i, std::move(*value));
          changed = true;
        }
      }
    } else if (auto value = rewrite(reflection->GetString(message, field))) {
      reflection->SetString(&message, field, std::move(*value));
      changed = true;
    }
  }
  return changed;
}

bool is_string_field(const FieldDescriptor* field) {
  return field->type() == FieldDescriptor::TYPE_STRING;
}

std::optional<std::string> escape(const std::string& value) {
  auto escaped = to_wire_text(value);
  if (escaped == value) return std::nullopt;
  return escaped;
}

std::optional<std::string> repair(const std::string& value) {
  if (is_utf8(value)) return std::nullopt;
  return to_wire_text(value);
}

// A copy of the generated schema with every `string` field declared `bytes` (the same wire type),
// so that Protobuf reads any bytes into it; map entries become plain repeated messages, since a
// map's key cannot be `bytes`. Built once, on first use.
class LenientSchema {
 public:
  static LenientSchema& instance() {
    static LenientSchema schema;
    return schema;
  }

  // A new empty lenient message of the same type as `generated`, or nullptr when its schema
  // could not be copied (never for protocol/*.proto).
  std::unique_ptr<pb::Message> make(const pb::Descriptor* generated) {
    std::lock_guard lock(mutex_);
    if (!add_file(generated->file())) return nullptr;
    const auto* lenient = pool_.FindMessageTypeByName(generated->full_name());
    if (lenient == nullptr) return nullptr;
    return std::unique_ptr<pb::Message>(factory_.GetPrototype(lenient)->New());
  }

 private:
  static void loosen(pb::DescriptorProto& message) {
    for (auto& field : *message.mutable_field())
      if (field.type() == pb::FieldDescriptorProto::TYPE_STRING)
        field.set_type(pb::FieldDescriptorProto::TYPE_BYTES);
    if (message.has_options()) message.mutable_options()->clear_map_entry();
    for (auto& nested : *message.mutable_nested_type()) loosen(nested);
  }

  bool add_file(const pb::FileDescriptor* file) {
    if (pool_.FindFileByName(file->name()) != nullptr) return true;
    for (int i = 0; i < file->dependency_count(); ++i)
      if (!add_file(file->dependency(i))) return false;
    pb::FileDescriptorProto copy;
    file->CopyTo(&copy);
    for (auto& message : *copy.mutable_message_type()) loosen(message);
    return pool_.BuildFile(copy) != nullptr;
  }

  std::mutex mutex_;
  pb::DescriptorPool pool_;
  pb::DynamicMessageFactory factory_{&pool_};
};

}  // namespace

bool escape_text_fields(pb::Message& message) {
  return rewrite_fields(message, is_string_field, escape);
}

int bound_text_fields(pb::Message& message, std::size_t max_bytes) {
  static constexpr std::string_view kEllipsis = "\xE2\x80\xA6";
  int cut = 0;
  (void)rewrite_fields(
      message, is_string_field, [&](const std::string& value) -> std::optional<std::string> {
        if (value.size() <= max_bytes) return std::nullopt;
        std::size_t end = max_bytes > kEllipsis.size() ? max_bytes - kEllipsis.size() : 0;
        // Back to the start of a character (not a continuation byte).
        while (end > 0 && (static_cast<unsigned char>(value[end]) & 0xC0) == 0x80) --end;
        ++cut;
        return value.substr(0, end) + std::string(kEllipsis);
      });
  return cut;
}

bool repair_text_fields(pb::Message& message) {
  return rewrite_fields(message, is_string_field, repair);
}

bool text_fields_are_utf8(const pb::Message& message) {
  const auto* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const auto* field : fields) {
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i)
          if (!text_fields_are_utf8(reflection->GetRepeatedMessage(message, field, i)))
            return false;
      } else if (!text_fields_are_utf8(reflection->GetMessage(message, field))) {
        return false;
      }
    } else if (is_string_field(field)) {
      std::string scratch;
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i)
          if (!is_utf8(reflection->GetRepeatedStringReference(message, field, i, &scratch)))
            return false;
      } else if (!is_utf8(reflection->GetStringReference(message, field, &scratch))) {
        return false;
      }
    }
  }
  return true;
}

Result<ParseRepair> parse_repairing(pb::Message& message, std::string_view serialized) {
  if (serialized.size() > static_cast<std::size_t>(INT32_MAX)) return Error{"message too large"};
  const int size = static_cast<int>(serialized.size());
  if (message.ParseFromArray(serialized.data(), size)) return ParseRepair::none;
  auto lenient = LenientSchema::instance().make(message.GetDescriptor());
  if (!lenient || !lenient->ParseFromArray(serialized.data(), size)) {
    message.Clear();
    return Error{fmt::format("{} bytes that are not a {} message", serialized.size(),
                             message.GetDescriptor()->name())};
  }
  // The lenient copy's `bytes` fields that are `string` in the real schema get escaped; the real
  // `bytes` fields (ActionResult.output, evidence chunks) are left as they are.
  const auto* generated_pool = message.GetDescriptor()->file()->pool();
  (void)rewrite_fields(
      *lenient,
      [&](const FieldDescriptor* field) {
        const auto* real = generated_pool->FindFieldByName(field->full_name());
        return real != nullptr && real->type() == FieldDescriptor::TYPE_STRING;
      },
      repair);
  if (!message.ParseFromString(lenient->SerializeAsString())) {
    message.Clear();
    return Error{fmt::format("{} bytes that are not a {} message", serialized.size(),
                             message.GetDescriptor()->name())};
  }
  return ParseRepair::repaired;
}

}  // namespace riposte
