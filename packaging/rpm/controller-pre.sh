# riposte-controller %pre: the service user.
getent group riposte >/dev/null || groupadd -r riposte
getent passwd riposte >/dev/null || \
    useradd -r -g riposte -d /var/lib/riposte -M -s /sbin/nologin -c "Riposte controller" riposte
exit 0
