#!/bin/sh
# udhcpc's hook in the test guest: the address, the default route (first interface only) and
# the hostname from the DHCP answer.
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ] && ! ip route | grep -q '^default'; then
      ip route add default via "${router%% *}" dev "$interface"
    fi
    [ -n "$hostname" ] && hostname "$hostname"
    ;;
esac
exit 0
