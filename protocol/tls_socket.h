#pragma once

// A TLS connection with OpenSSL reading and writing the socket itself, for servers that hold tens
// of thousands of mostly idle connections (the agent gateway).
//
// asio::ssl::stream keeps two 17 KiB buffers of its own and a BIO pair with two more, allocated
// for the life of the connection: 68 KiB per agent, 3.4 GB for 50,000 idle agents. Here the SSL
// object is bound to the (non-blocking) socket descriptor and OpenSSL's record buffers are
// released while idle (SSL_MODE_RELEASE_BUFFERS, set by tls::make_tls13_context), so an idle
// session costs the SSL object and the peer's certificate. When OpenSSL wants the socket readable
// or writable, the operation waits for it with the socket's reactor (async_wait) and retries.
//
// OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a process using this must ignore SIGPIPE
// (riposte-controller does at start), or a peer that resets the connection while OpenSSL writes
// an alert kills it.
//
// Models what EnvelopeChannel and asio::async_write need of a stream: async_read_some,
// async_write_some and get_executor; plus a server handshake. Like any asio stream: one read and
// one write may be outstanding at once, on one strand (OpenSSL allows a read and a write to
// interleave on one SSL object from one thread at a time). Errors are asio's: asio::error::eof
// when the peer closes, the SSL category (asio::error::get_ssl_category) for TLS errors.

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <cerrno>
#include <cstddef>
#include <memory>

namespace riposte {

class TlsSocket {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;

  // Takes the accepted socket; the SSL object is made from `context` (which keeps the verify
  // callback and certificates). Errors show at the handshake.
  TlsSocket(boost::asio::ip::tcp::socket socket, SSL_CTX* context)
      : socket_(std::move(socket)), ssl_(SSL_new(context)) {
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
    if (ssl_) {
      SSL_set_fd(ssl_.get(), socket_.native_handle());
      // A write that OpenSSL could do only in part returns that part (async_write loops), and a
      // retried write may come from a moved buffer: what asio's streams set too.
      SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
  }

  executor_type get_executor() { return socket_.get_executor(); }
  SSL* native_handle() { return ssl_.get(); }
  boost::asio::ip::tcp::socket& lowest_layer() { return socket_; }

  template <typename Token>
  auto async_server_handshake(Token&& token) {
    return run([](SSL* ssl, std::size_t& done) {
      done = 0;
      return SSL_accept(ssl);
    }, std::forward<Token>(token));
  }

  // Completes when a read would find data: plaintext OpenSSL already holds, or bytes on the
  // socket. Lets an idle reader wait without holding a receive buffer.
  template <typename Token>
  auto async_wait_readable(Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        [this, waited = false](auto& self, boost::system::error_code ec = {}) mutable {
          if (waited) return self.complete(ec);
          waited = true;
          if (!socket_.is_open() || (ssl_ && SSL_has_pending(ssl_.get()) == 1)) {
            // Known at once: delivered through a post (see run()).
            return boost::asio::post(socket_.get_executor(), std::move(self));
          }
          socket_.async_wait(boost::asio::ip::tcp::socket::wait_read, std::move(self));
        },
        token, socket_);
  }

  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    const boost::asio::mutable_buffer first = *boost::asio::buffer_sequence_begin(buffers);
    return run([first](SSL* ssl, std::size_t& done) {
      return SSL_read_ex(ssl, first.data(), first.size(), &done);
    }, std::forward<Token>(token));
  }

  template <typename ConstBuffers, typename Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    const boost::asio::const_buffer first = *boost::asio::buffer_sequence_begin(buffers);
    return run([first](SSL* ssl, std::size_t& done) {
      return SSL_write_ex(ssl, first.data(), first.size(), &done);
    }, std::forward<Token>(token));
  }

 private:
  struct SslFree {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };

  // Runs `step` (an SSL call returning 1 on success) until it succeeds or fails for good,
  // waiting for the socket whenever OpenSSL asks to. Completes with (error, bytes).
  //
  // An outcome known at once (data OpenSSL already held, a write the socket took whole) is
  // delivered through a post, never from inside the initiating call: asio::async_write would
  // otherwise start the next write from within this one, and a long run of immediate writes
  // nests until the stack overflows (seen under ASan with an agent flooding its session).
  template <typename Step, typename Token>
  auto run(Step step, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        [this, step, initiating = true, posted = false, outcome = boost::system::error_code(),
         bytes = std::size_t{0}](auto& self, boost::system::error_code wait_error = {}) mutable {
          if (posted) return self.complete(outcome, bytes);
          auto finish = [&](boost::system::error_code ec, std::size_t n) {
            if (!initiating) return self.complete(ec, n);
            posted = true;
            outcome = ec;
            bytes = n;
            boost::asio::post(socket_.get_executor(), std::move(self));
          };
          if (wait_error) return finish(wait_error, 0);
          if (!ssl_) return finish(boost::asio::error::no_memory, 0);
          // Closed meanwhile (timeout, revocation, a newer session): the SSL object still names
          // the old descriptor number, which the kernel may already have given to a new
          // connection. Never let OpenSSL touch it.
          if (!socket_.is_open()) return finish(boost::asio::error::operation_aborted, 0);
          ERR_clear_error();
          errno = 0;
          std::size_t done = 0;
          const int rc = step(ssl_.get(), done);
          if (rc == 1) return finish({}, done);
          switch (SSL_get_error(ssl_.get(), rc)) {
            case SSL_ERROR_WANT_READ:
              initiating = false;
              return socket_.async_wait(boost::asio::ip::tcp::socket::wait_read, std::move(self));
            case SSL_ERROR_WANT_WRITE:
              initiating = false;
              return socket_.async_wait(boost::asio::ip::tcp::socket::wait_write, std::move(self));
            case SSL_ERROR_ZERO_RETURN:  // close_notify
              return finish(boost::asio::error::eof, 0);
            case SSL_ERROR_SYSCALL:
              if (const auto code = ERR_get_error(); code != 0) return finish(ssl_error(code), 0);
              // No TLS error: the socket's own (errno), or a close without close_notify.
              if (errno != 0 && errno != EAGAIN)
                return finish({errno, boost::system::system_category()}, 0);
              return finish(boost::asio::ssl::error::stream_truncated, 0);
            default: {
              const auto code = ERR_get_error();
              // The peer closed without close_notify: what asio::ssl::stream calls it.
              if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
                return finish(boost::asio::ssl::error::stream_truncated, 0);
              return finish(code != 0 ? ssl_error(code)
                                      : boost::system::error_code(
                                            boost::asio::error::connection_aborted),
                            0);
            }
          }
        },
        token, socket_);
  }

  static boost::system::error_code ssl_error(unsigned long code) {
    return {static_cast<int>(code), boost::asio::error::get_ssl_category()};
  }

  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<SSL, SslFree> ssl_;
};

}  // namespace riposte
