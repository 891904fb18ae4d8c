#include "controller/observables/linking.h"

#include <gtest/gtest.h>

namespace riposte::controller {
namespace {

bool links(std::string type, std::string value) {
  return why_not_linking({std::move(type), std::move(value), ""}, "web-01.example.net",
                         {"10.20.1.5", "2001:db8::5"})
      .empty();
}

// Each member of "a value every alert on this host carries" does not link; values that name the
// same thing (an outside address, a domain, a dropper's path, an account of a person) do.
TEST(LinkingObservables, ValuesEveryHostOrEveryAlertCarriesDoNotLink) {
  for (const char* user :
       {"root", "SYSTEM", "NT AUTHORITY\\SYSTEM", "Administrator", "EXAMPLE\\administrator",
        "NT AUTHORITY\\NETWORK SERVICE", "root@web-01", "nobody", "LocalSystem"})
    EXPECT_FALSE(links("user", user)) << user;
  // Placeholders, SIDs, machine and per-session accounts, localized Administrator, daemons'.
  for (const char* user : {"-", "N/A", "S-1-5-18", "uid=0", "0", "HOSTX$", "DWM-1", "UMFD-0",
                           "NT AUTHORITY\\ANONYMOUS LOGON", "Administrateur", "www-data", "sshd",
                           "postgres", "systemd-network", "_apt"})
    EXPECT_FALSE(links("user", user)) << user;
  EXPECT_TRUE(links("user", "deploy"));
  EXPECT_TRUE(links("user", "EXAMPLE\\j.doe"));

  for (const char* ip : {"127.0.0.1", "::1", "0.0.0.0", "169.254.1.1", "fe80::1", "224.0.0.251",
                         "10.20.1.5", "2001:db8::5"})
    EXPECT_FALSE(links("ip", ip)) << ip;
  EXPECT_TRUE(links("ip", "198.51.100.7"));
  EXPECT_TRUE(links("ip", "10.20.1.6")) << "another host's address";

  for (const char* domain : {"localhost", "app.localhost", "web-01", "WEB-01.example.net"})
    EXPECT_FALSE(links("domain", domain)) << domain;
  EXPECT_TRUE(links("domain", "updates.example.org"));

  EXPECT_FALSE(links("md5", "d41d8cd98f00b204e9800998ecf8427e"));
  EXPECT_FALSE(links("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"));
  EXPECT_FALSE(links("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  EXPECT_TRUE(links("sha256", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));

  for (const char* path :
       {"/bin/bash", "/usr/bin/python3.11", "/usr/bin/perl", "C:\\Windows\\System32\\cmd.exe",
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
        "C:\\Windows\\System32\\svchost.exe", "/bin/busybox"})
    EXPECT_FALSE(links("file_path", path)) << path;
  EXPECT_TRUE(links("file_path", "/tmp/.x/dropper"));
  EXPECT_TRUE(links("file_path", "/usr/bin/python-dropper"));

  EXPECT_FALSE(links("process", "4242"));
  for (const char* url : {"http://127.0.0.1:8080/x", "http://localhost/", "http://[::1]/a",
                          "https://user@127.0.0.1/"})
    EXPECT_FALSE(links("url", url)) << url;
  EXPECT_TRUE(links("url", "https://updates.example.org/x"));
  EXPECT_FALSE(links("file_path", "/dev/null"));
}

}  // namespace
}  // namespace riposte::controller
