#include "controller/api/rule_set_routes.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/utc_time.h"
#include "controller/dispatch/evidence_store.h"

namespace riposte::controller {

using nlohmann::json;

namespace {

constexpr std::string_view kRuleSets = "/api/v1/rule-sets";

json rule_set_json(const ContentObjectRecord& o) {
  return json{{"sha256", o.sha256},           {"size", o.size},
              {"name", o.name},               {"created_by", o.created_by},
              {"created_at", format_utc_ms(o.created_at_ms)}};
}

}  // namespace

bool is_rule_set_upload(std::string_view method, std::string_view path) {
  return method == "POST" && path == kRuleSets;
}

ApiResponse RuleSetApi::upload(const ApiRequest& request, const std::string& actor) {
  if (dispatcher_ == nullptr) return error_response(503, "this controller does not dispatch");
  const auto name = query_param(request.target, "name");
  if (name.size() > 200 || std::any_of(name.begin(), name.end(), [](unsigned char c) {
        return c < 0x20 || c == 0x7f;
      }))
    return error_response(400, "name must be at most 200 characters, without control characters");
  if (request.body.empty()) return error_response(400, "the body must hold the rules (a .yar file)");
  if (auto checked = check_rule_text(request.body); !checked)
    return error_response(400, checked.error().message);
  auto stored = dispatcher_->store_rule_set(request.body, name, actor);
  if (!stored) return error_response(500, stored.error().message);
  auto object = store_.find_object(stored->sha256);
  if (!object || !*object) return error_response(500, "the rule set was not stored");
  auto body = rule_set_json(**object);
  body["created"] = stored->created;
  return json_response(stored->created ? 201 : 200, body);
}

ApiResponse RuleSetApi::list(const ApiRequest& request) {
  const auto limit = std::clamp<std::int64_t>(integer_param(request.target, "limit").value_or(100),
                                              1, 1000);
  auto objects = store_.list_objects(kYaraRulesKind, static_cast<int>(limit));
  if (!objects) return error_response(500, objects.error().message);
  json out = json::array();
  for (const auto& o : *objects) out.push_back(rule_set_json(o));
  return json_response(200, json{{"rule_sets", out}});
}

ApiResponse RuleSetApi::show(std::string_view rest) {
  const bool content = rest.ends_with("/content");
  if (content) rest.remove_suffix(std::string_view("/content").size());
  if (!is_sha256_hex(rest)) return error_response(400, "a rule set is named by its SHA-256 (64 lowercase hex digits)");
  auto object = store_.find_object(std::string(rest));
  if (!object) return error_response(500, object.error().message);
  if (!*object || (*object)->kind != kYaraRulesKind)
    return error_response(404, "no rule set with that SHA-256");
  if (!content) return json_response(200, rule_set_json(**object));
  auto bytes = store_.read_object((*object)->sha256, 0, (*object)->size);
  if (!bytes) return error_response(500, bytes.error().message);
  ApiResponse response{200, std::move(*bytes)};
  response.content_type = "text/plain; charset=utf-8";
  return response;
}

}  // namespace riposte::controller
