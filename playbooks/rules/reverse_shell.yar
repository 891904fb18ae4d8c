// Used by suspicious_process.yaml (rules_file). Any YARA source works here, including public sets
// written for LOKI/THOR: the agent defines filename, filepath, extension, filetype and owner.
rule reverse_shell_strings {
  meta:
    description = "shell redirected to a TCP socket"
  strings:
    $dev_tcp = "/dev/tcp/"
    $bash_i = "bash -i"
    $nc_e = "nc -e /bin/"
  condition:
    any of them
}
