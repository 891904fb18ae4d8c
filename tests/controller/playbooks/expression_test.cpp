#include "controller/playbooks/expression.h"

#include <gtest/gtest.h>

namespace riposte::controller {
namespace {

using nlohmann::json;

const json kContext = json::parse(R"({
  "alert": {"severity": "high", "host": {"name": "web-01", "ip": "10.0.0.5"},
            "rule": {"name": "Outbound C2 beacon"},
            "process": {"pid": 4242, "name": "curl"}},
  "observables": [{"type": "ip", "value": "203.0.113.9"}, {"type": "domain", "value": "evil.test"},
                  {"type": "ip", "value": "198.51.100.7"}],
  "confidence": {"score": 0.75, "decision": "respond"},
  "validation": {"status": "qualified", "hosts": ["web-01", "db-02"]},
  "steps": {"kill": {"state": "succeeded"}, "scan": {"state": "failed", "matches": []}}
})");

json eval(std::string_view text) {
  auto expression = Expression::parse(text);
  EXPECT_TRUE(expression) << text << ": " << expression.error().message;
  if (!expression) return nullptr;
  auto value = expression->evaluate(kContext);
  EXPECT_TRUE(value) << text << ": " << value.error().message;
  return value ? *value : json();
}

std::string parse_error(std::string_view text) {
  auto expression = Expression::parse(text);
  return expression ? std::string("(parsed)") : expression.error().message;
}

std::string eval_error(std::string_view text) {
  auto expression = Expression::parse(text);
  if (!expression) return "parse: " + expression.error().message;
  auto value = expression->evaluate(kContext);
  return value ? std::string("(evaluated)") : value.error().message;
}

TEST(Expression, FieldsIndexesAndMissingFieldsAreNull) {
  EXPECT_EQ(eval("alert.host.name"), "web-01");
  EXPECT_EQ(eval("observables[1].value"), "evil.test");
  EXPECT_EQ(eval("observables[-1].value"), "198.51.100.7");
  EXPECT_EQ(eval("alert['host'].ip"), "10.0.0.5");
  EXPECT_EQ(eval("steps.kill.state"), "succeeded");
  EXPECT_TRUE(eval("alert.user.name").is_null());
  EXPECT_TRUE(eval("observables[9].value").is_null());
  EXPECT_TRUE(eval("nothing.at.all").is_null());
}

TEST(Expression, ComparisonsAndLogic) {
  EXPECT_EQ(eval("confidence.score >= 0.75"), true);
  EXPECT_EQ(eval("confidence.score > 0.75"), false);
  EXPECT_EQ(eval("alert.process.pid == 4242 and alert.severity != 'low'"), true);
  EXPECT_EQ(eval("validation.status == \"qualified\" or false"), true);
  EXPECT_EQ(eval("not (alert.severity == 'high')"), false);
  EXPECT_EQ(eval("-1 < 0"), true);
  EXPECT_EQ(eval("'abc' < 'abd'"), true);
  // A missing field orders against nothing: false, not an error.
  EXPECT_EQ(eval("alert.user.age > 3"), false);
  // Short-circuit: the right side is not evaluated (it would be a type error).
  EXPECT_EQ(eval("false and alert.host > 1"), false);
  EXPECT_EQ(eval("true or alert.host > 1"), true);
}

TEST(Expression, MembershipAndFunctions) {
  EXPECT_EQ(eval("alert.severity in ['high', 'critical']"), true);
  EXPECT_EQ(eval("'web-01' in validation.hosts"), true);
  EXPECT_EQ(eval("'mail' not in validation.hosts"), true);
  EXPECT_EQ(eval("'C2' in alert.rule.name"), true);
  EXPECT_EQ(eval("'kill' in steps"), true);
  EXPECT_EQ(eval("len(observables)"), 3);
  EXPECT_EQ(eval("len(steps.scan.matches) == 0"), true);
  EXPECT_EQ(eval("count(observables, 'type', 'ip')"), 2);
  EXPECT_EQ(eval("lower(alert.rule.name)"), "outbound c2 beacon");
  EXPECT_EQ(eval("upper(alert.severity)"), "HIGH");
  EXPECT_EQ(eval("starts_with(alert.host.name, 'web-')"), true);
  EXPECT_EQ(eval("ends_with(alert.host.name, '-02')"), false);
  EXPECT_EQ(eval("contains(validation.hosts, 'db-02')"), true);
  EXPECT_EQ(eval("join(validation.hosts, ', ')"), "web-01, db-02");
}

TEST(Expression, ParseErrorsPointAtTheColumn) {
  EXPECT_EQ(parse_error("alert.severity = 'high'"),
            "column 16: '=' is not an operator; compare with '=='");
  EXPECT_EQ(parse_error("alert.severity == "), "column 19: expected a value, found the end");
  EXPECT_EQ(parse_error("(alert.x == 1"), "column 14: expected ')', found the end");
  EXPECT_EQ(parse_error("alert.x == 'open"), "column 12: string is not closed");
  EXPECT_EQ(parse_error("alert. == 1"), "column 8: expected a field name after '.', found '=='");
  EXPECT_EQ(parse_error("alert.x 1"), "column 9: expected an operator or the end, found '1'");
  EXPECT_EQ(parse_error("system('rm -rf /')"),
            "column 1: unknown function 'system' (known: contains, count, ends_with, join, len, "
            "lower, starts_with, upper)");
  EXPECT_EQ(parse_error("len(a, b)"), "column 1: len() takes 1 argument, given 2");
  EXPECT_EQ(parse_error("a ; b"), "column 3: unexpected character ';'");
  EXPECT_EQ(parse_error("   "), "column 1: empty expression");
  // Found by fuzzing: an integer literal beyond 64 bits threw out of the parser.
  EXPECT_EQ(parse_error("x < 55555555555555555555555"),
            "column 5: number 55555555555555555555555 is out of range");
}

TEST(Expression, TypeErrorsAtEvaluationNameTheColumn) {
  EXPECT_EQ(eval_error("alert.host > 1"),
            "column 12: '>' compares numbers or strings, not an object with a number");
  EXPECT_EQ(eval_error("lower(alert.process.pid)"),
            "column 1: lower() argument 1 must be a string, found a number");
  EXPECT_EQ(eval_error("1 in 2"),
            "column 3: 'in' needs a list, a string or an object on its right, found a number");
}

TEST(Expression, TruthinessAndRoots) {
  EXPECT_FALSE(truthy(nullptr));
  EXPECT_FALSE(truthy(0));
  EXPECT_FALSE(truthy(""));
  EXPECT_FALSE(truthy(json::array()));
  EXPECT_TRUE(truthy("x"));
  EXPECT_TRUE(truthy(json{{"a", 1}}));
  auto e = Expression::parse("steps.kill.state == 'succeeded' and len(observables) > confidence.x");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->roots(), (std::vector<std::string>{"confidence", "observables", "steps"}));
  EXPECT_EQ(e->test(kContext).value(), false);  // confidence.x is null: ordering is false
}

TEST(Template, RendersTextAndKeepsTypesForWholeValues) {
  auto t = Template::parse(
      "Kill {{ alert.process.name }} ({{alert.process.pid}}) on "
      "{{ alert.host.name }}{{ alert.user.name }}");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->render(kContext).value(), "Kill curl (4242) on web-01");
  auto whole = Template::parse("{{ alert.process.pid }}");
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->render_value(kContext).value(), 4242);
  auto list = Template::parse("{{ validation.hosts }}");
  EXPECT_EQ(list->render_value(kContext).value(), kContext["validation"]["hosts"]);
  EXPECT_EQ(Template::parse("plain text")->render(kContext).value(), "plain text");
  EXPECT_EQ(t->roots(), (std::vector<std::string>{"alert"}));
}

// Found by fuzzing: a list holding bytes that are not UTF-8 made rendering throw.
TEST(Template, InvalidUtf8IsReplacedNotThrown) {
  auto t = Template::parse("{{ ['\xff\xfe'] }} and {{ join(['\xff', 1], '-') }}");
  ASSERT_TRUE(t) << t.error().message;
  auto text = t->render(json::object());
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "[\"\xEF\xBF\xBD\xEF\xBF\xBD\"] and \xff-1");
}

TEST(Template, ErrorsUseTheTemplatesColumns) {
  auto unclosed = Template::parse("host {{ alert.host.name");
  ASSERT_FALSE(unclosed);
  EXPECT_EQ(unclosed.error().message, "column 6: '{{' is not closed");
  auto bad = Template::parse("pid {{ alert.pid = 1 }}");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "column 18: '=' is not an operator; compare with '=='");
}

// Parsed once, rendered many times: nested objects and lists keep their shape, each string is a
// template that keeps its value's type, and non-strings pass through.
TEST(JsonTemplate, RendersEveryStringAndKeepsTypesAndShape) {
  auto t = JsonTemplate::parse(json::parse(R"({
    "target": {"pid": "{{ p.pid }}", "start_ticks": "{{ p.ticks }}"},
    "paths": ["/tmp/{{ p.name }}", "{{ p.name }}.log"],
    "tree": true, "grace_ms": 500, "missing": "{{ p.nothing }}"})"));
  ASSERT_TRUE(t) << t.error().message;
  const json context{{"p", {{"pid", 42}, {"ticks", "123"}, {"name", "x"}}}};
  for (int i = 0; i < 2; ++i) {
    auto out = t->render(context);
    ASSERT_TRUE(out) << out.error().message;
    EXPECT_EQ(*out, json::parse(R"({"target": {"pid": 42, "start_ticks": "123"},
      "paths": ["/tmp/x", "x.log"], "tree": true, "grace_ms": 500, "missing": null})"));
  }
  EXPECT_EQ(t->source()["grace_ms"], 500);
  auto bad = JsonTemplate::parse(json{{"a", {"ok", "{{ 1 + }}"}}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("column"), std::string::npos);
  auto failing = JsonTemplate::parse(json{{"n", "{{ len(1) }}"}});
  ASSERT_TRUE(failing);
  EXPECT_FALSE(failing->render(json::object()));
}

}  // namespace
}  // namespace riposte::controller
