#!/bin/sh
# chassis_control program for ipmi_sim (agent/sim/ipmi-sim.ts copies it next to the state).
#   chassis-control.sh DIR get power|boot ...   prints power:0|1 and boot:<none|pxe|default|cdrom|bios>
#   chassis-control.sh DIR set PARM VALUE ...   power 0|1, boot <dev>, reset 1, shutdown 1, identify "I F"
# DIR holds the state (files power, boot), events.log, one line per change requested of the BMC,
# which tests read to see exactly what the driver did, and requests.log, every request (reads
# too). ipmi_sim blocks until this exits (popen), so it must stay quick.
set -u
dir=$1
op=$2
shift 2
# Every request, reads included ("get power", "set power 1"), for tests that count what reached the BMC.
echo "$op $*" >> "$dir/requests.log"

case $op in
get)
  for parm in "$@"; do
    case $parm in
      power) echo "power:$(cat "$dir/power")" ;;
      boot) echo "boot:$(cat "$dir/boot")" ;;
      *) echo "unknown parameter: $parm"; exit 1 ;;
    esac
  done
  ;;
set)
  while [ $# -ge 2 ]; do
    parm=$1
    val=$2
    shift 2
    echo "$parm $val" >> "$dir/events.log"
    case $parm in
      power) echo "$val" > "$dir/power" ;;
      boot) echo "$val" > "$dir/boot" ;;
      reset | identify) ;;
      shutdown)
        # ACPI soft-off: a running OS that honours it powers the node off (instantly here).
        if [ ! -e "$dir/ignore-soft-off" ] && [ "$(cat "$dir/power")" = 1 ]; then
          echo 0 > "$dir/power"
          echo "power 0" >> "$dir/events.log"
        fi
        ;;
      *) echo "unknown parameter: $parm"; exit 1 ;;
    esac
  done
  ;;
*)
  # includes "check", which chassis control does not support
  echo "unsupported operation: $op"
  exit 1
  ;;
esac
