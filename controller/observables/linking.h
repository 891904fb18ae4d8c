#pragma once

// Which observables link two alerts on one host (case grouping, an alert's history). A value
// links only when sharing it says the alerts are about the same thing: never a value every host,
// or every alert on this host, carries. Two unrelated alerts on one host both naming `root` are
// not one incident.

#include <string>
#include <string_view>
#include <vector>

#include "controller/observables/observable.h"

namespace riposte::controller {

// Why `o` does not link alerts about the host named `host_name` with addresses `host_ips`; ""
// when it does. Not linking:
// - process ids (they mean something on one host at one time only);
// - the host's own addresses (its name already ties the alerts), and host-local ones (loopback,
//   link-local, unspecified, multicast, broadcast: ip_network.h host_local_scope);
// - `localhost`-like names and the host's own name as a domain;
// - built-in and service accounts (root, SYSTEM, Administrator, LOCAL/NETWORK SERVICE, nobody,
//   daemon, ...), with or without a domain (`NT AUTHORITY\SYSTEM`, `root@host`);
// - the hashes of an empty file (MD5, SHA-1, SHA-256), which any empty file has;
// - shells, interpreters and system binaries most processes run under (`/bin/bash`,
//   `/usr/bin/python3`, `C:\Windows\System32\cmd.exe`, `powershell.exe`, `svchost.exe`, ...).
std::string why_not_linking(const Observable& o, std::string_view host_name,
                            const std::vector<std::string>& host_ips);

}  // namespace riposte::controller
