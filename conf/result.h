// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Result<T>: the control path's error type (g++ 12 has no std::expected).
//
// conf/ is the leaf layer, so the project's vocabulary types live here and every other layer may
// use them. Control paths (mgr/, conf/, tools/, init code of fabric/ and stack/) return
// Result<T>; the packet path returns counts or negative errno and never builds an Error.

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace gazelle {

// An errno-style code plus a message that already carries its context ("file:line: key: why").
struct Error {
    int code = EINVAL;
    std::string message;
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : state_(std::move(value)) {} // NOLINT(google-explicit-constructor)
    Result(Error error) : state_(std::move(error)) {} // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const Error& error() const { return std::get<1>(state_); }

private:
    std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), ok_(false) {} // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return error_; }

private:
    Error error_{0, {}};
    bool ok_ = true;
};

inline Error make_error(int code, std::string message) { return Error{code, std::move(message)}; }

} // namespace gazelle
