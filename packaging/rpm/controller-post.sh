# riposte-controller %post: the private data directory; the unit is enabled by the administrator
# (`systemctl enable --now riposte-controller`), as Fedora and RHEL presets expect.
install -d -o riposte -g riposte -m 0700 /var/lib/riposte
chown root:riposte /etc/riposte/controller.yaml
chmod 0640 /etc/riposte/controller.yaml
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
exit 0
