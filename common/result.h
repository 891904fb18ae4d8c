#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace riposte {

// An error a person can act on: what failed and why, in words.
struct Error {
  std::string message;
};

// Expected failures are values. Result<T> holds either a T or an Error; a caller must look before
// it takes the value (value() on an error is a programming error and throws).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  // On a temporary (`load().value()`) the value is moved out rather than referred to, so that
  // `for (const auto& x : load().value())` iterates a living object: a reference into the
  // temporary Result would dangle once the loop's range expression ends (it did, three times).
  T value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Result*>(this)->checked(); }
  T operator*() && { return std::move(checked()); }

  // The value, or `fallback` on error.
  T value_or(T fallback) const { return ok() ? std::get<T>(state_) : std::move(fallback); }

  const Error& error() const { return std::get<Error>(state_); }

 private:
  T& checked() {
    if (auto* error = std::get_if<Error>(&state_)) {
      throw std::logic_error("Result::value() on error: " + error->message);
    }
    return std::get<T>(state_);
  }
  std::variant<T, Error> state_;
};

struct Ok {};

using Status = Result<Ok>;

inline Status ok_status() { return Ok{}; }

}  // namespace riposte
