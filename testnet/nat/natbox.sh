# The NAT box: a home router. Packets from the NAT'd LAN leave with the
# box's address (MASQUERADE); from outside, only replies come back in.
# NAT_BLOCK lists addresses the LAN never reaches directly (the e2e's
# "dialed back through the relay" peer). Run by dash as root with
# NET_ADMIN; ip_forward is set by the compose file.
set -eu
read -r XTABLES_LIBDIR </xtables-libdir
export XTABLES_LIBDIR
iptables -t nat -A POSTROUTING -s "$NAT_LAN" ! -d "$NAT_LAN" -j MASQUERADE
for h in ${NAT_BLOCK:-}; do
	iptables -A FORWARD -s "$NAT_LAN" -d "$h" -p tcp -j REJECT --reject-with tcp-reset
	iptables -A FORWARD -s "$NAT_LAN" -d "$h" -j REJECT
done
iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A FORWARD -s "$NAT_LAN" -j ACCEPT
iptables -P FORWARD DROP
echo "natbox: $NAT_LAN masqueraded; blocked: ${NAT_BLOCK:-none}"
exec sleep infinity
