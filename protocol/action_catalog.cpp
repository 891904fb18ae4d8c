#include "protocol/action_catalog.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <memory>

#include "protocol/action_kinds.h"
#include "protocol/actions.pb.h"
#include "protocol/agent_channel.pb.h"
#include "protocol/wire_text.h"

namespace riposte::action_catalog {

namespace {

namespace ak = action_kind;
namespace pb = google::protobuf;
using nlohmann::json;

struct Entry {
  std::string_view kind;
  const pb::Descriptor* (*parameters)();
  const pb::Descriptor* (*result)();
};

// Must match agent/action_executor.cpp, which parses and produces these messages.
const Entry kEntries[] = {
    {ak::kProcessList, &proto::ProcessListParams::descriptor,
     &proto::ProcessListResult::descriptor},
    {ak::kProcessTree, &proto::ProcessTreeParams::descriptor,
     &proto::ProcessListResult::descriptor},
    {ak::kProcessKill, &proto::ProcessKillParams::descriptor,
     &proto::ProcessKillResult::descriptor},
    {ak::kProcessSuspend, &proto::ProcessSignalParams::descriptor, &proto::Empty::descriptor},
    {ak::kProcessResume, &proto::ProcessSignalParams::descriptor, &proto::Empty::descriptor},
    {ak::kMemoryCapture, &proto::MemoryCaptureParams::descriptor,
     &proto::MemoryCaptureResult::descriptor},
    {ak::kNetworkQuarantine, &proto::QuarantineParams::descriptor,
     &proto::QuarantineResult::descriptor},
    {ak::kNetworkRelease, &proto::Empty::descriptor, &proto::Empty::descriptor},
    {ak::kNetworkStatus, &proto::Empty::descriptor, &proto::NetworkStatusResult::descriptor},
    {ak::kNetworkConnections, &proto::ConnectionsParams::descriptor,
     &proto::ConnectionsResult::descriptor},
    {ak::kFileHash, &proto::FileParams::descriptor, &proto::FileResult::descriptor},
    {ak::kFileCollect, &proto::FileParams::descriptor, &proto::FileResult::descriptor},
    {ak::kFileQuarantine, &proto::FileParams::descriptor, &proto::FileResult::descriptor},
    {ak::kFileRestore, &proto::FileRestoreParams::descriptor, &proto::FileResult::descriptor},
    {ak::kYaraScan, &proto::YaraScanParams::descriptor, &proto::YaraScanResult::descriptor},
    {ak::kHostLogins, &proto::LoginsParams::descriptor, &proto::LoginsResult::descriptor},
    {ak::kHostFacts, &proto::Empty::descriptor, &proto::OsFacts::descriptor},
};

const Entry* find(std::string_view kind) {
  for (const auto& e : kEntries)
    if (e.kind == kind) return &e;
  return nullptr;
}

std::unique_ptr<pb::Message> make(const pb::Descriptor* descriptor) {
  return std::unique_ptr<pb::Message>(
      pb::MessageFactory::generated_factory()->GetPrototype(descriptor)->New());
}

// Parameters as JSON text for protobuf's parser. Text that is not UTF-8 (a playbook file's bytes
// reach here unchecked by any JSON parser) is refused, not sent on altered: nlohmann would throw.
Result<std::string> utf8_dump(const json& value) {
  try {
    return value.dump();
  } catch (const json::type_error&) {
    return Error{"a parameter holds text that is not UTF-8"};
  }
}

json to_json(const pb::Message& message) {
  pb::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string text;
  if (!pb::util::MessageToJsonString(message, &text, options).ok()) return nullptr;
  return json::parse(text, nullptr, false);
}

std::string field_list(const pb::Descriptor* d, const std::string& prefix = "") {
  std::string out;
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    const std::string name = prefix + f->name();
    std::string item = f->message_type() != nullptr && !f->is_repeated()
                           ? field_list(f->message_type(), name + ".")
                           : name;
    if (item.empty()) continue;
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

// Every ProcessRef set in `message` names its process by pid and start time: a pid alone could be
// recycled by the time the action runs, so a missing start time is refused here, before anything
// is stored or sent, with where to find it.
Status check_process_refs(const pb::Message& message, const std::string& prefix) {
  const auto* reflection = message.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const auto* field : fields) {
    if (field->message_type() == nullptr || field->is_repeated()) continue;
    const auto& sub = reflection->GetMessage(message, field);
    const std::string name = prefix + field->name();
    if (field->message_type() == proto::ProcessRef::descriptor()) {
      const auto& ref = static_cast<const proto::ProcessRef&>(sub);
      if (ref.pid() <= 0) return Error{fmt::format("{}.pid is missing", name)};
      if (ref.start_ticks() == 0) {
        return Error{fmt::format(
            "{0}.start_ticks is missing for pid {1}: a process is named by its pid and its start "
            "time, so that a recycled pid is never hit; process.list shows start_ticks for each "
            "process (or field 22 of /proc/{1}/stat on the host)",
            name, ref.pid())};
      }
    } else if (auto s = check_process_refs(sub, name + "."); !s) {
      return s;
    }
  }
  return ok_status();
}

}  // namespace

bool is_known_kind(std::string_view kind) { return find(kind) != nullptr; }

const pb::Descriptor* parameters_descriptor(std::string_view kind) {
  const auto* entry = find(kind);
  return entry != nullptr ? entry->parameters() : nullptr;
}

const pb::Descriptor* result_descriptor(std::string_view kind) {
  const auto* entry = find(kind);
  return entry != nullptr ? entry->result() : nullptr;
}

namespace {

json fields_json(const pb::Descriptor* message, int depth) {
  json fields = json::array();
  for (int i = 0; i < message->field_count(); ++i) {
    const auto* f = message->field(i);
    json field{{"name", f->name()}, {"repeated", f->is_repeated()}};
    switch (f->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_STRING:
        field["type"] = "string";
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        field["type"] = "boolean";
        break;
      case pb::FieldDescriptor::CPPTYPE_FLOAT:
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        field["type"] = "number";
        break;
      case pb::FieldDescriptor::CPPTYPE_ENUM: {
        field["type"] = "enum";
        json values = json::array();
        for (int v = 0; v < f->enum_type()->value_count(); ++v)
          values.push_back(f->enum_type()->value(v)->name());
        field["values"] = values;
        break;
      }
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        field["type"] = "object";
        // Our parameter messages nest two levels at most; the bound keeps a recursive message
        // (none today) from recursing forever.
        field["fields"] = depth < 4 ? fields_json(f->message_type(), depth + 1) : json::array();
        break;
      default:
        field["type"] = "integer";
    }
    fields.push_back(std::move(field));
  }
  return fields;
}

}  // namespace

json kinds_json() {
  json kinds = json::array();
  for (const auto& e : kEntries)
    kinds.push_back({{"kind", e.kind}, {"parameters", fields_json(e.parameters(), 0)}});
  return kinds;
}

Result<std::string> parameters_from_json(std::string_view kind, const json& parameters) {
  const auto* entry = find(kind);
  if (entry == nullptr) return Error{fmt::format("unknown action kind '{}'", kind)};
  if (!parameters.is_null() && !parameters.is_object())
    return Error{"parameters must be a JSON object"};
  auto message = make(entry->parameters());
  if (parameters.is_object() && !parameters.empty()) {
    pb::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto text = utf8_dump(parameters);
    if (!text) return Error{fmt::format("parameters for {}: {}", kind, text.error().message)};
    const auto status = pb::util::JsonStringToMessage(*text, message.get(), options);
    if (!status.ok()) {
      return Error{fmt::format("parameters for {}: {} (known parameters: {})", kind,
                               std::string(status.message()), field_list(entry->parameters()))};
    }
  }
  // A ProcessRef named `target` is what the action acts on: required, not just checked when set.
  const auto* descriptor = message->GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* field = descriptor->field(i);
    if (field->name() == "target" && field->message_type() == proto::ProcessRef::descriptor() &&
        !message->GetReflection()->HasField(*message, field)) {
      return Error{
          fmt::format("parameters for {}: target is missing: name the process by target.pid and "
                      "target.start_ticks (process.list shows both)",
                      kind)};
    }
  }
  if (auto s = check_process_refs(*message, ""); !s) {
    return Error{fmt::format("parameters for {}: {}", kind, s.error().message)};
  }
  return message->SerializeAsString();
}

namespace {

const pb::FieldDescriptor* field_named(const pb::Descriptor* d, const std::string& name) {
  if (const auto* f = d->FindFieldByName(name)) return f;
  // The protobuf JSON parser takes lowerCamelCase names too.
  for (int i = 0; i < d->field_count(); ++i)
    if (d->field(i)->json_name() == name) return d->field(i);
  return nullptr;
}

// Whether `value` (a mapping as written) gives field `name` of `d`, by its name or JSON name.
bool gives(const pb::Descriptor* d, const json& value, const std::string& name) {
  const auto* f = d->FindFieldByName(name);
  return f != nullptr && (value.contains(f->name()) || value.contains(f->json_name()));
}

// What must be there whatever the run fills in: a process is named by pid and start time (a
// literal pid above 0, a literal start time not 0), a file action names a path or a process.
Status check_required(const pb::Descriptor* d, const json& value, const std::string& path,
                      const std::function<Deferred(const json&)>& deferred) {
  const auto where = [&](const std::string& name) {
    return path.empty() ? name : path + "." + name;
  };
  if (d == proto::ProcessRef::descriptor()) {
    for (const char* name : {"pid", "start_ticks"})
      if (!gives(d, value, name))
        return Error{
            fmt::format("{} is missing: a process is named by its pid and start_ticks "
                        "(a recycled pid is never hit)",
                        where(name))};
    const auto* pid = value.contains("pid") ? &value["pid"] : nullptr;
    if (pid && deferred(*pid) == Deferred::no && (!pid->is_number_integer() || *pid <= 0))
      return Error{
          fmt::format("{} must be a process id above 0, not {}", where("pid"),
                      pid->dump(-1, ' ', false, json::error_handler_t::replace))};
    const auto* ticks = value.contains("start_ticks") ? &value["start_ticks"] : nullptr;
    if (ticks && deferred(*ticks) == Deferred::no && *ticks == 0)
      return Error{fmt::format("{} must not be 0", where("start_ticks"))};
  }
  if (d == proto::FileParams::descriptor() && !gives(d, value, "path") &&
      !gives(d, value, "process"))
    return Error{"give a path or a process"};
  const auto* target = d->FindFieldByName("target");
  if (path.empty() && target != nullptr &&
      target->message_type() == proto::ProcessRef::descriptor() && !gives(d, value, "target"))
    return Error{"target is missing: name the process by target.pid and target.start_ticks"};
  return ok_status();
}

// Walks `value` as message `d` at `path`, copying only its literals into `literals`.
Status check_written(const pb::Descriptor* d, const json& value, const std::string& path,
                     const std::function<Deferred(const json&)>& deferred, json& literals) {
  if (!value.is_object())
    return Error{fmt::format("{} must be a mapping (fields: {})",
                             path.empty() ? "parameters" : path, field_list(d))};
  literals = json::object();
  for (const auto& [key, item] : value.items()) {
    const std::string where = path.empty() ? key : path + "." + key;
    const auto* field = field_named(d, key);
    if (field == nullptr)
      return Error{d->field_count() == 0
                       ? fmt::format("no parameter '{}': this action takes none", where)
                       : fmt::format("no parameter '{}' (known: {})", where,
                                     field_list(d, path.empty() ? "" : path + "."))};
    const auto kind_of_value = deferred(item);
    if (kind_of_value == Deferred::any_value) continue;
    const bool text_only = kind_of_value == Deferred::text;
    const bool message = field->message_type() != nullptr;
    const bool takes_text = field->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING ||
                            field->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM;
    if (text_only && (field->is_repeated() || !takes_text))
      return Error{
          fmt::format("'{}' is text with expressions in it, so it renders as a string, "
                      "but {} must be {} (a value from one expression alone, "
                      "\"{{{{ expr }}}}\", keeps its type)",
                      where, field->name(),
                      field->is_repeated()                                     ? "a list"
                      : message                                                ? "a mapping"
                      : field->cpp_type() == pb::FieldDescriptor::CPPTYPE_BOOL ? "true or false"
                                                                               : "a number")};
    if (text_only) continue;  // a string, which the field takes; its value is checked at run time
    if (message && !field->is_repeated()) {
      json nested;
      if (auto s = check_written(field->message_type(), item, where, deferred, nested); !s)
        return s;
      if (!nested.empty()) literals[key] = std::move(nested);
      continue;
    }
    if (field->is_repeated()) {
      if (!item.is_array()) return Error{fmt::format("'{}' must be a list", where)};
      json list = json::array();
      for (std::size_t i = 0; i < item.size(); ++i) {
        const auto element = deferred(item[i]);
        if (element != Deferred::no) continue;  // a list element decided at run time
        if (message) {
          json nested;
          if (auto s = check_written(field->message_type(), item[i],
                                     fmt::format("{}[{}]", where, i), deferred, nested);
              !s)
            return s;
          list.push_back(std::move(nested));
        } else {
          list.push_back(item[i]);
        }
      }
      literals[key] = std::move(list);
      continue;
    }
    literals[key] = item;
  }
  // After the names: a misspelt field is named as such, not as the field it misses.
  return check_required(d, value, path, deferred);
}

}  // namespace

Status check_parameters_written(std::string_view kind, const json& parameters,
                                const std::function<Deferred(const json&)>& deferred) {
  const auto* entry = find(kind);
  if (entry == nullptr) return Error{fmt::format("unknown action kind '{}'", kind)};
  const json& given = parameters.is_null() ? json::object() : parameters;
  json literals;
  if (auto s = check_written(entry->parameters(), given, "", deferred, literals); !s)
    return Error{fmt::format("parameters for {}: {}", kind, s.error().message)};
  // The literals, through the parser `riposte action run` uses: a number where text belongs, an
  // unknown enum value, a negative count.
  auto message = make(entry->parameters());
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto text = utf8_dump(literals);
  if (!text) return Error{fmt::format("parameters for {}: {}", kind, text.error().message)};
  const auto status = pb::util::JsonStringToMessage(*text, message.get(), options);
  if (!status.ok())
    return Error{fmt::format("parameters for {}: {}", kind, std::string(status.message()))};
  return ok_status();
}

json parameters_to_json(std::string_view kind, const std::string& serialized) {
  const auto* entry = find(kind);
  if (entry == nullptr) return nullptr;
  auto message = make(entry->parameters());
  if (!parse_repairing(*message, serialized)) return nullptr;
  return to_json(*message);
}

std::int64_t json_int64(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) return 0;
  if (it->is_number()) return it->get<std::int64_t>();
  if (it->is_string()) return std::strtoll(it->get<std::string>().c_str(), nullptr, 10);
  return 0;
}

json result_to_json(std::string_view kind, const std::string& serialized) {
  const auto* entry = find(kind);
  if (entry == nullptr) return nullptr;
  auto message = make(entry->result());
  // Text that is not UTF-8 (an agent that did not escape it) is read as wire text; only bytes that
  // are not the kind's message at all are unreadable.
  if (auto parsed = parse_repairing(*message, serialized); !parsed) {
    return json{{kUnreadable, fmt::format("the agent's {} result could not be read: {}", kind,
                                          parsed.error().message)}};
  }
  auto shown = to_json(*message);
  if (shown.is_null())
    return json{{kUnreadable, fmt::format("the agent's {} result could not be shown", kind)}};
  return shown;
}

Result<json> parameters_from_pairs(std::string_view kind,
                                   const std::vector<std::pair<std::string, std::string>>& pairs) {
  const auto* entry = find(kind);
  if (entry == nullptr) return Error{fmt::format("unknown action kind '{}'", kind)};
  json out = json::object();
  for (const auto& [key, value] : pairs) {
    const pb::Descriptor* d = entry->parameters();
    json* node = &out;
    const pb::FieldDescriptor* field = nullptr;
    std::string_view rest = key;
    for (;;) {
      const auto dot = rest.find('.');
      const std::string part(rest.substr(0, dot));
      field = d == nullptr ? nullptr : d->FindFieldByName(part);
      if (field == nullptr) {
        return Error{fmt::format("{} has no parameter '{}' (known: {})", kind, key,
                                 field_list(entry->parameters()))};
      }
      if (dot == std::string_view::npos) break;
      if (field->message_type() == nullptr || field->is_repeated())
        return Error{fmt::format("parameter '{}': '{}' has no sub-fields", key, part)};
      d = field->message_type();
      node = &(*node)[part];
      rest = rest.substr(dot + 1);
    }
    json typed;
    switch (field->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        if (value != "true" && value != "false")
          return Error{fmt::format("parameter '{}' must be true or false", key)};
        typed = value == "true";
        break;
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        return Error{
            fmt::format("parameter '{}' is a group; set its fields ({}.FIELD=...)", key, key)};
      default:
        typed = value;  // proto3 JSON accepts numbers written as strings; the parser checks them
    }
    if (field->is_repeated()) {
      (*node)[field->name()].push_back(typed);
    } else {
      (*node)[field->name()] = typed;
    }
  }
  if (auto checked = parameters_from_json(kind, out); !checked) return checked.error();
  return out;
}

}  // namespace riposte::action_catalog
