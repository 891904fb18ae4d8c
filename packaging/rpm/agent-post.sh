# riposte-agent %post: the private state directory and, when the rollout passes
# RIPOSTE_CONTROLLER, RIPOSTE_TOKEN and RIPOSTE_CA_PIN, enrollment (read from the environment by
# riposte-agent itself). The unit stays inert until enrolled.
install -d -o root -g root -m 0700 /var/lib/riposte-agent
chmod 0600 /etc/riposte/agent.yaml
if [ -n "$RIPOSTE_CONTROLLER" ] && [ ! -e /var/lib/riposte-agent/agent.json ]; then
    /usr/bin/riposte-agent enroll --config /etc/riposte/agent.yaml || exit 1
    if [ -d /run/systemd/system ]; then systemctl enable --now riposte-agent.service >/dev/null 2>&1 || :; fi
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
exit 0
