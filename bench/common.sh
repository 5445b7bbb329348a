# Sourced by the benchmarks: timing one command, and medians of the times recorded.

# Runs the command and prints how long it took, in milliseconds.
ms() { local t0 t1; t0=$(date +%s%N); "$@"; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }

# The median of the numbers on standard input, one a line (the mean of the middle two
# when there is an even count).
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# The median of the times recorded as "LABEL MS" lines in FILE for LABEL.
median_of() { grep "^$2 " "$1" | awk '{print $2}' | median; }
