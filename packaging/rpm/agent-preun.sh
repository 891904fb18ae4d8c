# riposte-agent %preun: stop and disable on erase ($1 = 0), not on upgrade. A quarantine stays in
# the kernel until reboot or `nft delete table inet riposte_quarantine`.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now riposte-agent.service >/dev/null 2>&1 || :
fi
exit 0
