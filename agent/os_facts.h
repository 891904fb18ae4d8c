#pragma once

#include "platform/system_facts.h"
#include "protocol/agent_channel.pb.h"

namespace riposte::agent {

// The platform's view of the host as the wire message (Hello, Inventory, host.facts).
proto::OsFacts to_proto(const platform::SystemFacts& facts);

}  // namespace riposte::agent
