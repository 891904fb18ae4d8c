# riposte-controller %preun: stop and disable on erase ($1 = 0), not on upgrade.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now riposte-controller.service >/dev/null 2>&1 || :
fi
exit 0
