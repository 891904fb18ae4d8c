# riposte-agent %postun: restart after an upgrade ($1 >= 1); the restarted agent re-applies a
# quarantine in force. Erase keeps /var/lib/riposte-agent (RPM has no purge).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then systemctl try-restart riposte-agent.service >/dev/null 2>&1 || :; fi
fi
exit 0
