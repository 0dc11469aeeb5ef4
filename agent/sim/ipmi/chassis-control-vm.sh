#!/bin/sh
# chassis_control program for a VM-backed ipmi_sim (agent/sim/ipmi-sim.ts with `vm`): every
# request ("get power", "set power 1", "set boot pxe", "set reset 1", ...) goes to the Node
# process that owns the VM, over the unix socket DIR/control.sock (in the simulator's private
# temp dir), and its answer is printed as ipmi_sim expects ("power:0|1", "boot:<dev>").
#   chassis-control-vm.sh DIR get|set ARGS...
# An answer starting with "error" fails the request (ipmi_sim then answers the IPMI command
# with an error completion code). ipmi_sim blocks until this exits, so the Node side answers
# as soon as the VM process is started or stopped.
set -u
dir=$1
shift
if ! reply=$(printf '%s\n' "$*" | socat -t 30 - "UNIX-CONNECT:$dir/control.sock" 2>&1); then
  echo "error: the simulator's chassis control socket did not answer: $reply"
  exit 1
fi
case $reply in
  '') echo "error: the simulator's chassis control socket closed without an answer"; exit 1 ;;
  error*) printf '%s\n' "$reply"; exit 1 ;;
esac
printf '%s\n' "$reply"
