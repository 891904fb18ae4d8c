#pragma once

// The playbook expression language: small, documented and free of side effects. Conditions
// (`when`, `decide`) and templates (`{{ ... }}` in parameters and notification bodies) are
// evaluated over a run's context, a JSON object (alert, observables, enrichment, confidence,
// steps' results). No assignment, no loops, no I/O, no shell: an expression can only read.
//
//   literals     "text" 'text' 42 -1.5 true false null [1, "a"]
//   fields       alert.host.name   observables[0].value   steps.kill.state   (missing -> null)
//   comparison   == != < <= > >=   (numbers with numbers, strings with strings; == on anything)
//   membership   x in [..]   "sub" in "string"   x not in [..]
//   logic        and or not   (short-circuit; operands by truthiness)
//   functions    len(x) lower(s) upper(s) contains(s|list, x) starts_with(s, p) ends_with(s, p)
//                join(list, sep) count(list, field, value)
//
// Truthiness: null, false, 0, "", [] and {} are false; everything else is true. Parse errors and
// type errors name the 1-based column.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/result.h"

namespace riposte::controller {

struct ExpressionNode;

class Expression {
 public:
  static Result<Expression> parse(std::string_view text);

  Result<nlohmann::json> evaluate(const nlohmann::json& context) const;
  // evaluate() then truthiness.
  Result<bool> test(const nlohmann::json& context) const;
  // The root names the expression reads (alert, steps, ...), for checking against what a playbook
  // provides before it runs.
  std::vector<std::string> roots() const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::shared_ptr<const ExpressionNode> root_;
};

bool truthy(const nlohmann::json& value);

// Compact JSON text of a value, never throwing: strings from playbook files or alerts are not
// guaranteed valid UTF-8, and bad bytes are replaced rather than aborting a run.
std::string compact_json(const nlohmann::json& value);

// "Kill {{ alert.process.pid }} on {{ alert.host.name }}": text with embedded expressions. A
// value that is not a string is written as compact JSON; null as an empty string.
class Template {
 public:
  static Result<Template> parse(std::string_view text);
  Result<std::string> render(const nlohmann::json& context) const;
  // A template that is exactly one "{{ expr }}" renders to the value itself (a number stays a
  // number), so action parameters keep their types.
  Result<nlohmann::json> render_value(const nlohmann::json& context) const;
  std::vector<std::string> roots() const;

 private:
  struct Part {
    std::string literal;
    std::shared_ptr<Expression> expression;  // null for a literal part
  };
  std::vector<Part> parts_;
};

}  // namespace riposte::controller
