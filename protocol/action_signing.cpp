#include "protocol/action_signing.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

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
