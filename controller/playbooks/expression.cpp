#include "controller/playbooks/expression.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <map>
#include <set>

namespace riposte::controller {

using nlohmann::json;

struct ExpressionNode {
  enum class Kind {
    literal,
    root,
    field,
    index,
    list,
    call,
    logical_not,
    logical_and,
    logical_or,
    compare
  };
  Kind kind = Kind::literal;
  json literal;
  std::string name;  // root or field name, function, comparison operator
  std::vector<std::shared_ptr<const ExpressionNode>> children;
  int column = 1;
};

namespace {

using Node = ExpressionNode;
using NodePtr = std::shared_ptr<const Node>;

// Function name -> how many arguments it takes.
const std::map<std::string, std::size_t, std::less<>> kFunctions{
    {"len", 1},         {"lower", 1},     {"upper", 1}, {"contains", 2},
    {"starts_with", 2}, {"ends_with", 2}, {"join", 2},  {"count", 3}};

Error at(int column, std::string_view message) {
  return Error{fmt::format("column {}: {}", column, message)};
}

struct Token {
  enum class Kind { identifier, number, string, symbol, end };
  Kind kind = Kind::end;
  std::string text;
  json value;  // number or string literal
  int column = 1;
};

Result<std::vector<Token>> tokenize(std::string_view text) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const int column = static_cast<int>(i) + 1;
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t end = i;
      while (end < text.size() &&
             (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_'))
        ++end;
      tokens.push_back({Token::Kind::identifier, std::string(text.substr(i, end - i)), {}, column});
      i = end;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      std::size_t end = i;
      bool fraction = false;
      while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) ||
                                   (text[end] == '.' && !fraction && end + 1 < text.size() &&
                                    std::isdigit(static_cast<unsigned char>(text[end + 1]))))) {
        fraction |= text[end] == '.';
        ++end;
      }
      const std::string digits(text.substr(i, end - i));
      // from_chars, not stoll/stod: an out-of-range literal is an error here, not an exception.
      json value;
      std::from_chars_result parsed{};
      if (fraction) {
        double real = 0;
        parsed = std::from_chars(digits.data(), digits.data() + digits.size(), real);
        value = real;
      } else {
        std::int64_t integer = 0;
        parsed = std::from_chars(digits.data(), digits.data() + digits.size(), integer);
        value = integer;
      }
      if (parsed.ec != std::errc())
        return at(column, fmt::format("number {} is out of range", digits));
      tokens.push_back({Token::Kind::number, digits, value, column});
      i = end;
    } else if (c == '"' || c == '\'') {
      std::string value;
      std::size_t end = i + 1;
      for (; end < text.size() && text[end] != c; ++end) {
        if (text[end] == '\\' && end + 1 < text.size()) ++end;
        value += text[end];
      }
      if (end >= text.size()) return at(column, "string is not closed");
      tokens.push_back(
          {Token::Kind::string, std::string(text.substr(i, end + 1 - i)), value, column});
      i = end + 1;
    } else {
      static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">="};
      const auto two = text.substr(i, 2);
      if (std::find(std::begin(kTwo), std::end(kTwo), two) != std::end(kTwo)) {
        tokens.push_back({Token::Kind::symbol, std::string(two), {}, column});
        i += 2;
      } else if (std::string_view("<>()[],.-").find(c) != std::string_view::npos) {
        tokens.push_back({Token::Kind::symbol, std::string(1, c), {}, column});
        ++i;
      } else if (c == '=') {
        return at(column, "'=' is not an operator; compare with '=='");
      } else {
        return at(column, fmt::format("unexpected character '{}'", c));
      }
    }
  }
  tokens.push_back({Token::Kind::end, "", {}, static_cast<int>(text.size()) + 1});
  return tokens;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<NodePtr> parse_all() {
    auto node = parse_or();
    if (!node) return node;
    if (peek().kind != Token::Kind::end) return unexpected("an operator or the end");
    return node;
  }

 private:
  const Token& peek() const { return tokens_[pos_]; }
  bool is_word(std::string_view word) const {
    return peek().kind == Token::Kind::identifier && peek().text == word;
  }
  bool is_symbol(std::string_view symbol) const {
    return peek().kind == Token::Kind::symbol && peek().text == symbol;
  }
  Error unexpected(std::string_view expected) const {
    const auto& t = peek();
    return at(t.column, fmt::format("expected {}, found {}", expected,
                                    t.kind == Token::Kind::end ? "the end" : "'" + t.text + "'"));
  }
  static NodePtr make(Node::Kind kind, int column, std::vector<NodePtr> children = {},
                      std::string name = "", json literal = nullptr) {
    return std::make_shared<const Node>(
        Node{kind, std::move(literal), std::move(name), std::move(children), column});
  }

  Result<NodePtr> parse_or() {
    auto left = parse_and();
    while (left && is_word("or")) {
      const int column = peek().column;
      ++pos_;
      auto right = parse_and();
      if (!right) return right;
      left = make(Node::Kind::logical_or, column, {*left, *right});
    }
    return left;
  }

  Result<NodePtr> parse_and() {
    auto left = parse_not();
    while (left && is_word("and")) {
      const int column = peek().column;
      ++pos_;
      auto right = parse_not();
      if (!right) return right;
      left = make(Node::Kind::logical_and, column, {*left, *right});
    }
    return left;
  }

  Result<NodePtr> parse_not() {
    if (is_word("not")) {
      const int column = peek().column;
      ++pos_;
      auto operand = parse_not();
      if (!operand) return operand;
      return make(Node::Kind::logical_not, column, {*operand});
    }
    return parse_comparison();
  }

  Result<NodePtr> parse_comparison() {
    auto left = parse_postfix();
    if (!left) return left;
    static const std::set<std::string, std::less<>> kOperators{"==", "!=", "<", "<=", ">", ">="};
    std::string op;
    const int column = peek().column;
    if (peek().kind == Token::Kind::symbol && kOperators.contains(peek().text)) {
      op = peek().text;
      ++pos_;
    } else if (is_word("in")) {
      op = "in";
      ++pos_;
    } else if (is_word("not") && tokens_[pos_ + 1].kind == Token::Kind::identifier &&
               tokens_[pos_ + 1].text == "in") {
      op = "not in";
      pos_ += 2;
    } else {
      return left;
    }
    auto right = parse_postfix();
    if (!right) return right;
    return make(Node::Kind::compare, column, {*left, *right}, op);
  }

  Result<NodePtr> parse_postfix() {
    auto node = parse_primary();
    while (node) {
      if (is_symbol(".")) {
        ++pos_;
        if (peek().kind != Token::Kind::identifier) return unexpected("a field name after '.'");
        node = make(Node::Kind::field, peek().column, {*node}, peek().text);
        ++pos_;
      } else if (is_symbol("[")) {
        const int column = peek().column;
        ++pos_;
        auto index = parse_or();
        if (!index) return index;
        if (!is_symbol("]")) return unexpected("']'");
        ++pos_;
        node = make(Node::Kind::index, column, {*node, *index});
      } else {
        break;
      }
    }
    return node;
  }

  Result<NodePtr> parse_primary() {
    const Token t = peek();
    switch (t.kind) {
      case Token::Kind::number:
      case Token::Kind::string:
        ++pos_;
        return make(Node::Kind::literal, t.column, {}, "", t.value);
      case Token::Kind::end:
        return unexpected("a value");
      case Token::Kind::symbol:
        if (t.text == "-" && tokens_[pos_ + 1].kind == Token::Kind::number) {
          pos_ += 2;
          const auto& v = tokens_[pos_ - 1].value;
          return make(
              Node::Kind::literal, t.column, {}, "",
              v.is_number_integer() ? json(-v.get<std::int64_t>()) : json(-v.get<double>()));
        }
        if (t.text == "(") {
          ++pos_;
          auto inner = parse_or();
          if (!inner) return inner;
          if (!is_symbol(")")) return unexpected("')'");
          ++pos_;
          return inner;
        }
        if (t.text == "[") {
          ++pos_;
          std::vector<NodePtr> items;
          if (!is_symbol("]")) {
            for (;;) {
              auto item = parse_or();
              if (!item) return item;
              items.push_back(*item);
              if (is_symbol("]")) break;
              if (!is_symbol(",")) return unexpected("',' or ']'");
              ++pos_;
            }
          }
          ++pos_;
          return make(Node::Kind::list, t.column, std::move(items));
        }
        return unexpected("a value");
      case Token::Kind::identifier:
        break;
    }
    ++pos_;
    if (t.text == "true" || t.text == "false")
      return make(Node::Kind::literal, t.column, {}, "", json(t.text == "true"));
    if (t.text == "null") return make(Node::Kind::literal, t.column);
    if (t.text == "and" || t.text == "or" || t.text == "in" || t.text == "not") {
      --pos_;
      return unexpected("a value");
    }
    if (!is_symbol("(")) return make(Node::Kind::root, t.column, {}, t.text);
    const auto function = kFunctions.find(t.text);
    if (function == kFunctions.end()) {
      std::string known;
      for (const auto& [name, arity] : kFunctions) known += (known.empty() ? "" : ", ") + name;
      return at(t.column, fmt::format("unknown function '{}' (known: {})", t.text, known));
    }
    ++pos_;
    std::vector<NodePtr> args;
    if (!is_symbol(")")) {
      for (;;) {
        auto arg = parse_or();
        if (!arg) return arg;
        args.push_back(*arg);
        if (is_symbol(")")) break;
        if (!is_symbol(",")) return unexpected("',' or ')'");
        ++pos_;
      }
    }
    ++pos_;
    if (args.size() != function->second) {
      return at(t.column,
                fmt::format("{}() takes {} argument{}, given {}", t.text, function->second,
                            function->second == 1 ? "" : "s", args.size()));
    }
    return make(Node::Kind::call, t.column, std::move(args), t.text);
  }

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
};

std::string type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  return "an object";
}

Result<json> evaluate_node(const Node& node, const json& context);

Result<json> compare(const Node& node, const json& left, const json& right) {
  const auto& op = node.name;
  if (op == "in" || op == "not in") {
    bool found = false;
    if (right.is_array()) {
      found = std::find(right.begin(), right.end(), left) != right.end();
    } else if (right.is_string() && left.is_string()) {
      found = right.get<std::string>().find(left.get<std::string>()) != std::string::npos;
    } else if (right.is_object() && left.is_string()) {
      found = right.contains(left.get<std::string>());
    } else if (!right.is_null()) {
      return at(node.column, fmt::format("'{}' needs a list, a string or an object on its right, "
                                         "found {}",
                                         op, type_name(right)));
    }
    return json(op == "in" ? found : !found);
  }
  if (op == "==") return json(left == right);
  if (op == "!=") return json(left != right);
  // Ordering: a missing field orders against nothing, so the condition is simply false.
  if (left.is_null() || right.is_null()) return json(false);
  const bool numbers = left.is_number() && right.is_number();
  const bool strings = left.is_string() && right.is_string();
  if (!numbers && !strings) {
    return at(node.column, fmt::format("'{}' compares numbers or strings, not {} with {}", op,
                                       type_name(left), type_name(right)));
  }
  int order = 0;
  if (numbers) {
    const double a = left.get<double>(), b = right.get<double>();
    order = a < b ? -1 : (a > b ? 1 : 0);
  } else {
    order = left.get<std::string>().compare(right.get<std::string>());
  }
  if (op == "<") return json(order < 0);
  if (op == "<=") return json(order <= 0);
  if (op == ">") return json(order > 0);
  return json(order >= 0);
}

Result<std::string> string_arg(const Node& node, const json& value, int position) {
  if (value.is_null()) return std::string();
  if (!value.is_string()) {
    return at(node.column, fmt::format("{}() argument {} must be a string, found {}", node.name,
                                       position, type_name(value)));
  }
  return value.get<std::string>();
}

Result<json> call(const Node& node, const std::vector<json>& args) {
  const auto& name = node.name;
  if (name == "len") {
    const auto& v = args[0];
    if (v.is_null()) return json(0);
    if (v.is_string()) return json(v.get<std::string>().size());
    if (v.is_array() || v.is_object()) return json(v.size());
    return at(node.column,
              fmt::format("len() needs a string, list or object, found {}", type_name(v)));
  }
  if (name == "lower" || name == "upper") {
    auto s = string_arg(node, args[0], 1);
    if (!s) return s.error();
    std::transform(s->begin(), s->end(), s->begin(), [&](unsigned char c) {
      return static_cast<char>(name == "lower" ? std::tolower(c) : std::toupper(c));
    });
    return json(*s);
  }
  if (name == "contains") {
    if (args[0].is_array())
      return json(std::find(args[0].begin(), args[0].end(), args[1]) != args[0].end());
    auto s = string_arg(node, args[0], 1);
    if (!s) return s.error();
    auto part = string_arg(node, args[1], 2);
    if (!part) return part.error();
    return json(s->find(*part) != std::string::npos);
  }
  if (name == "starts_with" || name == "ends_with") {
    auto s = string_arg(node, args[0], 1);
    if (!s) return s.error();
    auto affix = string_arg(node, args[1], 2);
    if (!affix) return affix.error();
    return json(name == "starts_with" ? s->starts_with(*affix) : s->ends_with(*affix));
  }
  if (name == "join") {
    if (!args[0].is_array() && !args[0].is_null())
      return at(node.column, fmt::format("join() needs a list, found {}", type_name(args[0])));
    auto separator = string_arg(node, args[1], 2);
    if (!separator) return separator.error();
    std::string out;
    for (const auto& item : args[0].is_null() ? json::array() : args[0]) {
      if (!out.empty()) out += *separator;
      out += item.is_string() ? item.get<std::string>() : compact_json(item);
    }
    return json(out);
  }
  // count(list, field, value): how many objects in the list have field == value.
  if (!args[0].is_array() && !args[0].is_null())
    return at(node.column, fmt::format("count() needs a list, found {}", type_name(args[0])));
  auto field = string_arg(node, args[1], 2);
  if (!field) return field.error();
  std::size_t n = 0;
  for (const auto& item : args[0].is_null() ? json::array() : args[0]) {
    n += item.is_object() && item.contains(*field) && item[*field] == args[2];
  }
  return json(n);
}

Result<json> evaluate_node(const Node& node, const json& context) {
  using Kind = Node::Kind;
  switch (node.kind) {
    case Kind::literal:
      return node.literal;
    case Kind::root:
      return context.is_object() && context.contains(node.name) ? context[node.name] : json();
    case Kind::field: {
      auto object = evaluate_node(*node.children[0], context);
      if (!object) return object;
      return object->is_object() && object->contains(node.name) ? (*object)[node.name] : json();
    }
    case Kind::index: {
      auto container = evaluate_node(*node.children[0], context);
      if (!container) return container;
      auto index = evaluate_node(*node.children[1], context);
      if (!index) return index;
      if (container->is_array() && index->is_number_integer()) {
        auto i = index->get<std::int64_t>();
        if (i < 0) i += static_cast<std::int64_t>(container->size());
        return i >= 0 && i < static_cast<std::int64_t>(container->size()) ? (*container)[i]
                                                                          : json();
      }
      if (container->is_object() && index->is_string())
        return container->value(index->get<std::string>(), json());
      if (container->is_null()) return json();
      return at(node.column,
                fmt::format("cannot index {} with {}", type_name(*container), type_name(*index)));
    }
    case Kind::list: {
      json items = json::array();
      for (const auto& child : node.children) {
        auto item = evaluate_node(*child, context);
        if (!item) return item;
        items.push_back(std::move(*item));
      }
      return items;
    }
    case Kind::call: {
      std::vector<json> args;
      for (const auto& child : node.children) {
        auto arg = evaluate_node(*child, context);
        if (!arg) return arg;
        args.push_back(std::move(*arg));
      }
      return call(node, args);
    }
    case Kind::logical_not: {
      auto operand = evaluate_node(*node.children[0], context);
      if (!operand) return operand;
      return json(!truthy(*operand));
    }
    case Kind::logical_and:
    case Kind::logical_or: {
      auto left = evaluate_node(*node.children[0], context);
      if (!left) return left;
      const bool is_and = node.kind == Kind::logical_and;
      if (truthy(*left) != is_and) return json(!is_and);  // short-circuit
      auto right = evaluate_node(*node.children[1], context);
      if (!right) return right;
      return json(truthy(*right));
    }
    case Kind::compare: {
      auto left = evaluate_node(*node.children[0], context);
      if (!left) return left;
      auto right = evaluate_node(*node.children[1], context);
      if (!right) return right;
      return compare(node, *left, *right);
    }
  }
  return json();
}

void collect_roots(const Node& node, std::set<std::string>& roots) {
  if (node.kind == Node::Kind::root) roots.insert(node.name);
  for (const auto& child : node.children) collect_roots(*child, roots);
}

}  // namespace

std::string compact_json(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  // (json::empty() is false for every string, so strings are measured themselves.)
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  if (v.is_array() || v.is_object()) return !v.empty();
  return true;
}

Result<Expression> Expression::parse(std::string_view text) {
  auto tokens = tokenize(text);
  if (!tokens) return tokens.error();
  if (tokens->size() == 1) return at(1, "empty expression");
  Parser parser(std::move(*tokens));
  auto root = parser.parse_all();
  if (!root) return root.error();
  Expression expression;
  expression.text_ = std::string(text);
  expression.root_ = std::move(*root);
  return expression;
}

Result<json> Expression::evaluate(const json& context) const {
  return evaluate_node(*root_, context);
}

Result<bool> Expression::test(const json& context) const {
  auto value = evaluate(context);
  if (!value) return value.error();
  return truthy(*value);
}

std::vector<std::string> Expression::roots() const {
  std::set<std::string> roots;
  collect_roots(*root_, roots);
  return {roots.begin(), roots.end()};
}

Result<Template> Template::parse(std::string_view text) {
  Template out;
  out.text_ = std::string(text);
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      out.parts_.push_back({std::string(text.substr(pos)), nullptr});
      break;
    }
    if (open > pos) out.parts_.push_back({std::string(text.substr(pos, open - pos)), nullptr});
    const auto close = text.find("}}", open + 2);
    if (close == std::string_view::npos)
      return at(static_cast<int>(open) + 1, "'{{' is not closed");
    auto expression = Expression::parse(text.substr(open + 2, close - open - 2));
    if (!expression) {
      // Columns inside the braces, shifted to the template's own columns.
      const auto& message = expression.error().message;
      int inner = 1;
      std::sscanf(message.c_str(), "column %d:", &inner);
      const auto colon = message.find(": ");
      return at(static_cast<int>(open) + 2 + inner,
                colon == std::string::npos ? message : message.substr(colon + 2));
    }
    out.parts_.push_back({"", std::make_shared<Expression>(std::move(*expression))});
    pos = close + 2;
  }
  return out;
}

Result<std::string> Template::render(const json& context) const {
  std::string out;
  for (const auto& part : parts_) {
    if (!part.expression) {
      out += part.literal;
      continue;
    }
    auto value = part.expression->evaluate(context);
    if (!value) return value.error();
    if (value->is_string()) {
      out += value->get<std::string>();
    } else if (!value->is_null()) {
      out += compact_json(*value);
    }
  }
  return out;
}

bool Template::has_expression() const {
  return std::any_of(parts_.begin(), parts_.end(),
                     [](const Part& p) { return p.expression != nullptr; });
}

Result<json> Template::render_value(const json& context) const {
  if (parts_.size() == 1 && parts_[0].expression) return parts_[0].expression->evaluate(context);
  auto text = render(context);
  if (!text) return text.error();
  return json(*text);
}

Result<JsonTemplate> JsonTemplate::parse(const json& value) {
  JsonTemplate out;
  out.source_ = value;
  // Depth first, in the order render_node walks the value (nlohmann iterates objects by key).
  std::function<Status(const json&)> visit = [&](const json& node) -> Status {
    if (node.is_string()) {
      auto parsed = Template::parse(node.get<std::string>());
      if (!parsed) return parsed.error();
      out.strings_.push_back(std::move(*parsed));
    } else if (node.is_structured()) {
      for (const auto& child : node)
        if (auto s = visit(child); !s) return s;
    }
    return ok_status();
  };
  if (auto s = visit(out.source_); !s) return s.error();
  return out;
}

Result<json> JsonTemplate::render(const json& context) const {
  std::size_t next = 0;
  return render_node(source_, context, next);
}

Result<json> JsonTemplate::render_node(const json& node, const json& context,
                                       std::size_t& next) const {
  if (node.is_string()) return strings_.at(next++).render_value(context);
  if (!node.is_structured()) return node;
  json out = node.is_object() ? json::object() : json::array();
  for (auto it = node.begin(); it != node.end(); ++it) {
    auto rendered = render_node(*it, context, next);
    if (!rendered) return rendered;
    if (node.is_object()) {
      out[it.key()] = std::move(*rendered);
    } else {
      out.push_back(std::move(*rendered));
    }
  }
  return out;
}

std::vector<std::string> Template::roots() const {
  std::set<std::string> roots;
  for (const auto& part : parts_) {
    if (!part.expression) continue;
    for (auto& root : part.expression->roots()) roots.insert(std::move(root));
  }
  return {roots.begin(), roots.end()};
}

}  // namespace riposte::controller
