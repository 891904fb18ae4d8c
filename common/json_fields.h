#pragma once

// Reading fields of JSON that came from outside (feed files, SIEM documents, request bodies).
// nlohmann's `value(key, default)` throws `type_error` when the key holds another type than the
// default's (`"type": true` where a string belongs; found by fuzz_feed_misp), and `value()` on a
// non-object throws too. These read such a field as absent instead, so a malformed document is
// skipped with a reason by its reader rather than aborting a whole load.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace riposte::json_fields {

// The string at `key`; nullopt when `object` is not an object, or the key is absent or not a
// string.
inline std::optional<std::string> string_at(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return std::nullopt;
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// The string at `key`, or `fallback` as for string_at.
inline std::string string_or(const nlohmann::json& object, std::string_view key,
                             std::string fallback = {}) {
  auto s = string_at(object, key);
  return s ? std::move(*s) : std::move(fallback);
}

// The boolean at `key`, or `fallback` when `object` is not an object, or the key is absent or not
// a boolean.
inline bool bool_or(const nlohmann::json& object, std::string_view key, bool fallback) {
  if (!object.is_object()) return fallback;
  const auto it = object.find(key);
  return it != object.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

// Whether `object` holds `key` with a value that is not a string: for readers that report such a
// field instead of treating it as absent.
inline bool holds_non_string(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return false;
  const auto it = object.find(key);
  return it != object.end() && !it->is_string();
}

}  // namespace riposte::json_fields
