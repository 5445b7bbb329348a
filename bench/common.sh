# Sourced by the benchmarks: timing one command, and medians of the times recorded.

# Runs the command and prints how long it took, in milliseconds.
ms() { local t0 t1; t0=$(date +%s%N); "$@"; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }

# The median of the numbers on standard input, one a line (the mean of the middle two
# when there is an even count).
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# The median of the times recorded as "LABEL MS" lines in FILE for LABEL.
median_of() { grep "^$2 " "$1" | awk '{print $2}' | median; }

# The CPU time the hypervisor took from this machine (steal), in per mille of all CPU
# time since the `steal_mark` before: on a shared VM it slows a run that uses both cores
# at once (ours) more than one that uses one (the manual procedure), so the figures are
# printed with it.
steal_mark() { STEAL_MARK=$(awk '/^cpu /{print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat); }
steal_since_mark() {
  awk -v mark="$STEAL_MARK" '/^cpu /{split(mark, m, " "); t = $2+$3+$4+$5+$6+$7+$8+$9;
    printf "%d", (t > m[2]) ? ($9 - m[1]) * 1000 / (t - m[2]) : 0}' /proc/stat
}
