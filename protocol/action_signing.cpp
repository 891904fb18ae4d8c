#include "protocol/action_signing.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <system_error>
#include <thread>

#include "protocol/crypto.h"

namespace riposte {

std::string serialize_action_spec(const proto::ActionSpec& spec) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  return bytes;
}

Result<proto::ActionRequest> sign_action(const proto::ActionSpec& spec, EVP_PKEY* action_key) {
  proto::ActionRequest request;
  request.set_action_spec(serialize_action_spec(spec));
  auto signature = crypto::sign_ed25519(action_key, request.action_spec());
  if (!signature) return signature.error();
  request.set_signature(std::string(signature->begin(), signature->end()));
  return request;
}

Result<std::vector<proto::ActionRequest>> sign_actions(const std::vector<proto::ActionSpec>& specs,
                                                       EVP_PKEY* action_key) {
  constexpr std::size_t kPerThreadAtLeast = 256;
  std::vector<proto::ActionRequest> out(specs.size());
  std::vector<std::optional<Error>> errors;
  const auto sign_range = [&](std::size_t begin, std::size_t end, std::optional<Error>& error) {
    try {
      for (std::size_t i = begin; i < end && !error; ++i) {
        auto signed_request = sign_action(specs[i], action_key);
        if (!signed_request) {
          error = signed_request.error();
          return;
        }
        out[i] = std::move(*signed_request);
      }
    } catch (const std::exception& e) {  // on a helper thread it would end the process
      error = Error{std::string("signing failed: ") + e.what()};
    }
  };
  const std::size_t threads = std::clamp<std::size_t>(
      specs.size() / kPerThreadAtLeast, 1, std::max(1u, std::thread::hardware_concurrency()));
  errors.resize(threads);
  const std::size_t per = (specs.size() + threads - 1) / threads;
  std::vector<std::thread> helpers;
  for (std::size_t t = 1; t < threads; ++t) {
    const auto begin = std::min(specs.size(), t * per);
    const auto end = std::min(specs.size(), (t + 1) * per);
    try {
      helpers.emplace_back(sign_range, begin, end, std::ref(errors[t]));
    } catch (const std::system_error&) {  // no thread to be had: this one signs that share too
      sign_range(begin, end, errors[t]);
    }
  }
  sign_range(0, std::min(specs.size(), per), errors[0]);
  for (auto& h : helpers) h.join();
  for (auto& e : errors)
    if (e) return std::move(*e);
  return out;
}

Result<proto::ActionSpec> verify_action(const proto::ActionRequest& request,
                                        EVP_PKEY* action_public_key) {
  const auto& sig = request.signature();
  if (!crypto::verify_ed25519(action_public_key, request.action_spec(),
                              {reinterpret_cast<const std::uint8_t*>(sig.data()), sig.size()})) {
    return Error{"bad signature: the action was not signed by this controller's action key"};
  }
  proto::ActionSpec spec;
  if (!spec.ParseFromString(request.action_spec())) return Error{"malformed action"};
  return spec;
}

}  // namespace riposte
