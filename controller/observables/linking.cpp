#include "controller/observables/linking.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "controller/observables/ip_network.h"

namespace riposte::controller {

namespace t = observable_type;

namespace {

// "NT AUTHORITY\SYSTEM" -> "system", "root@web-01" -> "root".
std::string account_name(std::string_view user) {
  if (const auto slash = user.rfind('\\'); slash != std::string_view::npos)
    user.remove_prefix(slash + 1);
  if (const auto at = user.find('@'); at != std::string_view::npos) user = user.substr(0, at);
  return ascii_lower(user);
}

// The last path component, lowercased, for both separators.
std::string file_name(std::string_view path) {
  if (const auto cut = path.find_last_of("/\\"); cut != std::string_view::npos)
    path.remove_prefix(cut + 1);
  return ascii_lower(path);
}

bool one_of(std::string_view value, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

bool ubiquitous_account(std::string_view name) {
  // Placeholders sources write for "no user" (Windows events: "-").
  if (name.empty() || one_of(name, {"-", "n/a", "na", "none", "null", "unknown", "?"})) return true;
  // Windows well-known SIDs of LocalSystem, LocalService, NetworkService, and uid 0.
  if (one_of(name, {"s-1-5-18", "s-1-5-19", "s-1-5-20", "0", "uid=0"})) return true;
  // A Windows machine account (HOST$) and the per-session system accounts Windows makes
  // (DWM-1, UMFD-0): every logon on that host has one.
  if (name.ends_with('$') || name.starts_with("dwm-") || name.starts_with("umfd-")) return true;
  // Linux daemons' own accounts: every event of that service carries them.
  if (name.starts_with("systemd-") || name.starts_with('_')) return true;
  return one_of(name, {"root",
                       "system",
                       "localsystem",
                       "local service",
                       "localservice",
                       "network service",
                       "networkservice",
                       "anonymous logon",
                       "administrator",
                       "administrateur",
                       "administrador",
                       "amministratore",
                       "administratör",
                       "järjestelmänvalvoja",
                       "nobody",
                       "daemon",
                       "trustedinstaller",
                       "defaultaccount",
                       "guest",
                       "www-data",
                       "apache",
                       "nginx",
                       "httpd",
                       "sshd",
                       "postgres",
                       "mysql",
                       "redis",
                       "messagebus",
                       "syslog",
                       "polkitd",
                       "bin",
                       "sys",
                       "nfsnobody"});
}

bool ubiquitous_binary(std::string_view name) {
  // Interpreters with a version in their name: python3, python3.11, perl5.36.
  for (std::string_view family : {"python", "perl", "ruby", "php", "node"})
    if (name.starts_with(family)) {
      const auto rest = name.substr(family.size());
      if (std::all_of(rest.begin(), rest.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
          }))
        return true;
    }
  return one_of(name, {"sh",
                       "bash",
                       "dash",
                       "ash",
                       "zsh",
                       "ksh",
                       "csh",
                       "tcsh",
                       "fish",
                       "busybox",
                       "env",
                       "sudo",
                       "su",
                       "systemd",
                       "init",
                       "cron",
                       "crond",
                       "sshd",
                       "login",
                       "cmd.exe",
                       "powershell.exe",
                       "pwsh.exe",
                       "pwsh",
                       "conhost.exe",
                       "svchost.exe",
                       "rundll32.exe",
                       "explorer.exe",
                       "services.exe",
                       "lsass.exe",
                       "csrss.exe",
                       "wininit.exe",
                       "winlogon.exe",
                       "wmiprvse.exe",
                       "taskhostw.exe",
                       "dllhost.exe"});
}

bool empty_file_hash(std::string_view hash) {
  return one_of(hash,
                {"d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709",
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"});
}

}  // namespace

std::string why_not_linking(const Observable& o, std::string_view host_name,
                            const std::vector<std::string>& host_ips) {
  if (o.type == t::kProcess) return "a process id means something on one host at one time only";
  if (o.type == t::kIp) {
    if (std::find(host_ips.begin(), host_ips.end(), o.value) != host_ips.end())
      return "the host's own address";
    if (const auto scope = host_local_scope(o.value); !scope.empty())
      return fmt::format("a {} address", scope);
  }
  if (o.type == t::kDomain) {
    const auto name = ascii_lower(o.value);
    if (name == "localhost" || name.ends_with(".localhost") || name == "localhost.localdomain")
      return "a name of every host";
    if (same_host_name(o.value, host_name)) return "the host's own name";
  }
  if (o.type == t::kUser && ubiquitous_account(account_name(o.value)))
    return "a built-in or service account every host has";
  if ((o.type == t::kMd5 || o.type == t::kSha1 || o.type == t::kSha256) && empty_file_hash(o.value))
    return "the hash of an empty file";
  if (o.type == t::kFilePath && ubiquitous_binary(file_name(o.value)))
    return "a shell, interpreter or system binary most processes run under";
  if (o.type == t::kFilePath &&
      one_of(ascii_lower(o.value), {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/tty",
                              "nul", "\\\\.\\nul"}))
    return "a device every process opens";
  if (o.type == t::kUrl) {
    // http://127.0.0.1:8080/x: a URL on a host-local address names no outside thing.
    auto rest = std::string_view(o.value);
    if (const auto scheme = rest.find("://"); scheme != std::string_view::npos)
      rest.remove_prefix(scheme + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
    std::string host(rest);
    if (host.starts_with('[')) {
      host = host.substr(1, host.find(']') - 1);
    } else if (const auto colon = host.rfind(':'); colon != std::string::npos) {
      host = host.substr(0, colon);
    }
    const auto name = ascii_lower(host);
    if (!host_local_scope(host).empty() || name == "localhost" || name.ends_with(".localhost"))
      return "a URL on a host-local address";
  }
  return "";
}

}  // namespace riposte::controller
