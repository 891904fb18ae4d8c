#pragma once

// Which protobuf messages carry each action kind's parameters and result, and their JSON forms
// for the API and CLI (proto3 JSON mapping: field names as in actions.proto, 64-bit integers as
// strings).

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace google::protobuf {
class Descriptor;
}

namespace riposte::action_catalog {

bool is_known_kind(std::string_view kind);
// The message types of `kind`'s parameters and result (actions.proto); nullptr for an unknown kind.
const google::protobuf::Descriptor* parameters_descriptor(std::string_view kind);
const google::protobuf::Descriptor* result_descriptor(std::string_view kind);

// JSON object -> serialized parameters message of `kind`; unknown fields and wrong types are
// errors naming the field.
Result<std::string> parameters_from_json(std::string_view kind, const nlohmann::json& parameters);
nlohmann::json parameters_to_json(std::string_view kind, const std::string& serialized);

// What a parameter value written before the run (a playbook step's) will be: a literal, checked
// now; a value decided at run time of any type (`{{ inputs.pid }}`); or text decided at run time
// (`{{ a }}:{{ b }}`, which renders as a string whatever `a` and `b` are).
enum class Deferred { no, any_value, text };
// Checks `kind`'s parameters as written in a playbook: every name as parameters_from_json takes
// it (unknown names list the known ones), every literal by its field's type with the same
// parser `riposte action run` uses, and each deferred value by what it must yield (text cannot
// fill a number, boolean, object or list). Values only known at run time (a process target's pid
// and start time) are checked when the step runs, as before.
Status check_parameters_written(std::string_view kind, const nlohmann::json& parameters,
                                const std::function<Deferred(const nlohmann::json&)>& deferred);
// Serialized result message -> JSON: always an object. Text an agent sent that is not UTF-8 is
// shown as wire text (common/utf8.h); bytes that are not the kind's result message at all (a
// hostile or broken agent) give {"unreadable": "<why, in words>"} and nothing else, which readers
// take as a failed answer (result_unreadable).
nlohmann::json result_to_json(std::string_view kind, const std::string& serialized);
inline constexpr const char* kUnreadable = "unreadable";
// The reason a result_to_json object could not be read, or nullopt when it was read (or is not an
// object at all).
inline std::optional<std::string> result_unreadable(const nlohmann::json& result) {
  if (!result.is_object()) return std::nullopt;
  const auto it = result.find(kUnreadable);
  if (it == result.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}
// A 64-bit integer field of such JSON: Protobuf writes int64 as a string, other producers as a
// number; 0 when absent or not a number.
std::int64_t json_int64(const nlohmann::json& object, const char* key);

// Every kind with the shape of its parameters, for forms (the console's "run an action"):
// [{"kind", "parameters": [{"name", "type", "repeated", "values"?, "fields"?}]}], where type is
// string, integer, number, boolean, enum (with "values") or object (with "fields", the same
// shape); names are the fields' names in actions.proto, as parameters_from_json takes them.
nlohmann::json kinds_json();

// CLI pairs like {"target.pid", "42"}, {"paths", "/a"}, {"paths", "/b"} -> a JSON object shaped
// by the parameters message: dotted keys nest, repeated fields collect, bools and numbers typed.
Result<nlohmann::json> parameters_from_pairs(
    std::string_view kind, const std::vector<std::pair<std::string, std::string>>& pairs);

}  // namespace riposte::action_catalog
