# riposte-controller %postun: restart after an upgrade ($1 >= 1). Erase keeps /var/lib/riposte
# (RPM has no purge); delete it by hand to forget the CA and the database.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then systemctl try-restart riposte-controller.service >/dev/null 2>&1 || :; fi
fi
exit 0
