# The NAT'd node: its only way out is the NAT box. Sets the default route
# (needs NET_ADMIN), then runs the node as PM_UID:PM_GID, not root.
set -eu
ip route replace default via "$NAT_GW"
exec setpriv --reuid="$PM_UID" --regid="$PM_GID" --clear-groups /proofmesh node
