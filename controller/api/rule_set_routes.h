#pragma once

// The API's YARA rule set routes (docs/api.md "Rule sets"): a rule set is uploaded once as the
// raw text of a .yar file, stored by its SHA-256, and named by that hash in yara.scan actions
// (`rules_sha256`), however many agents they go to. ApiRouter has authenticated the caller and
// checked the role before these run.
//
//   POST /api/v1/rule-sets?name=NAME   body: the rules, any size up to the configured limit
//                                      (api.max_rule_set_bytes, default 64 MiB); 201 when new,
//                                      200 when that exact text was already stored
//   GET  /api/v1/rule-sets             newest first
//   GET  /api/v1/rule-sets/SHA256      what is stored; /content adds the text itself

#include "controller/api/router_types.h"
#include "controller/dispatch/action_dispatcher.h"
#include "controller/store/store.h"

namespace riposte::controller {

class RuleSetApi {
 public:
  RuleSetApi(Store& store, ActionDispatcher* dispatcher) : store_(store), dispatcher_(dispatcher) {}

  ApiResponse upload(const ApiRequest& request, const std::string& actor);
  ApiResponse list(const ApiRequest& request);
  // `rest`: the path after /api/v1/rule-sets/
  ApiResponse show(std::string_view rest);

 private:
  Store& store_;
  ActionDispatcher* dispatcher_;
};

// Whether `path` (no query) is the upload route, whose body limit is the rule-set limit once
// the caller is known to be allowed to upload.
bool is_rule_set_upload(std::string_view method, std::string_view path);

}  // namespace riposte::controller
