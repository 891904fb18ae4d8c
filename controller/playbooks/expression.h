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

#include "common/result.h"

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
  // Without expressions it is a literal; exactly one "{{ expr }}", a value of any type; text and
  // expressions together, a string.
  bool has_expression() const;
  bool is_single_expression() const { return parts_.size() == 1 && parts_[0].expression; }
  std::vector<std::string> roots() const;
  const std::string& text() const { return text_; }  // as written
  bool empty() const { return text_.empty(); }

 private:
  struct Part {
    std::string literal;
    std::shared_ptr<Expression> expression;  // null for a literal part
  };
  std::string text_;
  std::vector<Part> parts_;
};

// A JSON value whose strings are templates (action parameters, a webhook body), parsed once and
// rendered as often as needed: each string renders with render_value, so "{{ inputs.pid }}"
// stays a number.
class JsonTemplate {
 public:
  // Errors: the first string that is not a valid template.
  static Result<JsonTemplate> parse(const nlohmann::json& value);
  Result<nlohmann::json> render(const nlohmann::json& context) const;
  const nlohmann::json& source() const { return source_; }

 private:
  Result<nlohmann::json> render_node(const nlohmann::json& node, const nlohmann::json& context,
                                     std::size_t& next) const;

  nlohmann::json source_ = nlohmann::json::object();
  std::vector<Template> strings_;  // the strings of `source_`, in traversal order
};

}  // namespace riposte::controller
