#!/usr/bin/env bash
# Issue 14, data-parallel training under MPI (`mpirun -np N understudy train CONFIG`):
#   1. 2 ranks x 1 thread give the loss curve of 1 process on the same global batch (3 rows: the
#      ranks' shards are uneven), to float tolerance; only rank 0 prints and writes;
#   2. a rank killed with kill -9 stops the job with mpirun's error, and the last checkpoint
#      resumes with ANOTHER number of ranks (2 -> 1, and 1 -> 2 after a killed single process),
#      continuing the reference curve;
#   3. a rank that stops answering (SIGSTOP) does not hang the job: the other rank gives up after
#      US_MPI_TIMEOUT_S with a message naming the cause;
#   4. a time budget (student.train_minutes) ends on every rank at the same step;
#   5. commands other than train refuse to run under mpirun (N copies would each call the teacher);
#   6. LoRA (student.init on a Q8_0 GGUF, student.lora_rank): 2 ranks x 1 thread give 1 process's
#      curve (the adapters' gradients summed by the allreduce), and a single LoRA process killed
#      with kill -9 resumes its adapter checkpoint under 2 ranks, continuing the curve.
# Skips when mpirun is missing or understudy was built without MPI.
. "$(dirname "$0")/lib.sh"

command -v mpirun >/dev/null || { echo "SKIP: mpirun is missing (scripts/deps.sh test installs openmpi-bin)"; exit 77; }
"$US_BIN" --version | grep -q '^MPI: yes' ||
  { echo "SKIP: understudy was built without MPI (libopenmpi-dev missing, or -DUS_MPI=OFF)"; exit 77; }

MPIRUN=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" -ne 0 ] || MPIRUN+=(--allow-run-as-root) # Open MPI refuses root without it
export OMPI_MCA_btl_vader_single_copy_mechanism=none   # containers often forbid ptrace-based copies
# ranks waiting in a collective yield the core instead of spinning: the test runs beside others
# under ctest -j, and spinning ranks doubled its CPU time (29 s against 14-16 s at load 5)
export OMPI_MCA_mpi_yield_when_idle=1
# Under -DUS_SANITIZE=ON, LeakSanitizer is off for the ranks only: Open MPI leaves allocations of
# components it unloads at MPI_Finalize, which no suppression can name (the processes that run
# without mpirun here, and the unit tests, keep the leak check).
MPI_ASAN="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

gen_prompts 200 "$WORK/prompts.jsonl"
start_mock --answers "$WORK/prompts.jsonl.answers.jsonl"
# a small model: about 20 ms a step on an idle core, so the kills land mid-run, and STEPS steps
# stay quick on a loaded machine; 3 rows a step, so the 2 ranks' shards are 1 and 2 rows
STEPS=60
LM=(student.layers=2 student.lm_dim=64 student.heads=2 student.context=128 student.steps=$STEPS
  student.batch_size=3 student.warmup_steps=5 student.vocab_size=300 student.threads=1
  student.checkpoint_every=2)
write_config "$WORK/lm.json" 'task={"type":"generate","template":"{text}"}' "${LM[@]}"
expect_ok prompts prompts "$WORK/lm.json"
expect_ok label label "$WORK/lm.json"
for w in a b c d e f g; do cp -r "$WORK/out" "$WORK/$w"; done
out_of() { echo "--set" "output=\"$WORK/$1\""; }

# mpi NAME N ARGS...: `mpirun -np N understudy ARGS` in the foreground; status in RC
mpi() {
  local name=$1 n=$2
  shift 2
  RC=0
  ASAN_OPTIONS=$MPI_ASAN "${MPIRUN[@]}" -np "$n" "$US_BIN" "$@" >"$WORK/$name.out" \
    2>"$WORK/$name.err" || RC=$?
}
# start_mpi NAME N ARGS...: the same in the background; sets MPI_PID
start_mpi() {
  local name=$1 n=$2
  shift 2
  ASAN_OPTIONS=$MPI_ASAN "${MPIRUN[@]}" -np "$n" "$US_BIN" "$@" >"$WORK/$name.out" \
    2>"$WORK/$name.err" &
  MPI_PID=$!
  BG_PIDS+=("$MPI_PID")
}
# rank_pid MPIRUN_PID RANK: the pid of that rank among mpirun's descendants
rank_pid() {
  local pids=$1 all="" next p
  while [ -n "$pids" ]; do
    all+=" $pids"
    next=""
    for p in $pids; do next+=" $(pgrep -P "$p" || true)"; done
    pids=$(echo $next)
  done
  for p in $all; do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return 0; }
  done
  return 1
}
checkpoint_in() { ls "$WORK/$1"/student-*.ckpt >/dev/null 2>&1; }
# curve DIR: "step loss" of the last successful train in that workspace
curve() {
  db "SELECT CAST(x AS INT) || ' ' || printf('%.7f', y) FROM curves WHERE series = 'train_loss'
        AND run_id = (SELECT MAX(id) FROM runs WHERE command = 'train' AND status = 'ok')
        ORDER BY x;" "$WORK/$1/understudy.db"
}
# same_losses A B MSG: every step of curve file A is in B with a loss within 1e-4 (relative)
same_losses() {
  awk -v msg="$3" 'NR == FNR { ref[$1] = $2; next }
    { n++; if (!($1 in ref)) { print msg ": step " $1 " is not in the reference"; bad = 1; next }
      d = $2 - ref[$1]; if (d < 0) d = -d; if (d > 1e-4 * (ref[$1] < 0 ? -ref[$1] : ref[$1]) + 1e-6) {
        print msg ": step " $1 " loss " $2 ", reference " ref[$1]; bad = 1 } }
    END { if (!n) { print msg ": an empty curve"; bad = 1 } exit bad }' "$2" "$1" >&2 ||
    fail "$3"
}

note "1 process, then 2 ranks x 1 thread: the same loss curve"
expect_ok train_a train "$WORK/lm.json" $(out_of a)
curve a >"$WORK/curve.a"
[ "$(wc -l <"$WORK/curve.a")" -eq "$STEPS" ] || fail "the reference curve has $(wc -l <"$WORK/curve.a") steps, not $STEPS"
mpi train_b 2 train "$WORK/lm.json" $(out_of b)
[ "$RC" -eq 0 ] || { show "$WORK/train_b.out" "$WORK/train_b.err"; fail "mpirun -np 2 train exited $RC"; }
curve b >"$WORK/curve.b"
[ "$(wc -l <"$WORK/curve.b")" -eq "$STEPS" ] || fail "the 2-rank curve has $(wc -l <"$WORK/curve.b") steps, not $STEPS"
same_losses "$WORK/curve.b" "$WORK/curve.a" "2 ranks against 1 process"
cmp -s "$WORK/curve.a" "$WORK/curve.b" && note "(the curves are identical to 7 decimals)"
assert_eq "$(grep -c '^train: it$' "$WORK/train_b.err")" 1 "only rank 0 prints the stage"
assert_eq "$(grep -c 'trained on' "$WORK/train_b.out")" 1 "only rank 0 prints the summary"
[ -s "$WORK/b/student.bin" ] || fail "rank 0 wrote no model"
ls "$WORK/b" | grep -v '^understudy\.db' | grep -vx 'student\.bin' >"$WORK/extra" || true
[ ! -s "$WORK/extra" ] || { cat "$WORK/extra" >&2; fail "the 2-rank train left files behind"; }
expect_ok gen_b generate "$WORK/b/student.bin" --prompt 'my card was charged twice'
mpi train_b2 2 train "$WORK/lm.json" $(out_of b)
[ "$RC" -eq 0 ] || { show "$WORK/train_b2.err"; fail "a second mpirun train exited $RC"; }
assert_grep "$WORK/train_b2.out" 'up to date' "every rank agrees the model is up to date"

note "kill -9 of rank 1: the job stops, and 1 process resumes the checkpoint"
start_mpi train_c 2 train "$WORK/lm.json" $(out_of c)
wait_until 120 checkpoint_in c || { show "$WORK/train_c.err"; fail "no checkpoint within 120 s"; }
pid=$(rank_pid "$MPI_PID" 1) || fail "rank 1 of mpirun (pid $MPI_PID) not found"
kill -KILL "$pid"
wait_until 60 bash -c "! kill -0 $MPI_PID 2>/dev/null" || fail "mpirun still runs 60 s after rank 1 was killed"
wait_us "$MPI_PID"
[ "$RC" -ne 0 ] || fail "mpirun exited 0 although rank 1 was killed"
assert_grep "$WORK/train_c.err" 'rank 1 .*(exited on signal 9|killed)' "mpirun names the killed rank"
[ ! -e "$WORK/c/student.bin" ] || fail "the killed job left a model"
checkpoint_in c || fail "the killed job lost its checkpoint"
expect_ok train_c1 train "$WORK/lm.json" $(out_of c)
curve c >"$WORK/curve.c"
first=$(head -n1 "$WORK/curve.c" | cut -d' ' -f1)
[ "$first" -gt 1 ] || fail "the resumed train started again from step 1"
assert_eq "$(tail -n1 "$WORK/curve.c" | cut -d" " -f1)" "$STEPS" "the resumed train ends at the last step"
same_losses "$WORK/curve.c" "$WORK/curve.a" "2 ranks killed, resumed by 1 process from step $first"

note "kill -9 of a single process: 2 ranks resume its checkpoint"
start_us train_d train "$WORK/lm.json" $(out_of d)
wait_until 120 checkpoint_in d || { show "$WORK/train_d.err"; fail "no checkpoint within 120 s"; }
kill -KILL "$US_PID"
wait_us
mpi train_d2 2 train "$WORK/lm.json" $(out_of d)
[ "$RC" -eq 0 ] || { show "$WORK/train_d2.out" "$WORK/train_d2.err"; fail "mpirun -np 2 resume exited $RC"; }
curve d >"$WORK/curve.d"
first=$(head -n1 "$WORK/curve.d" | cut -d' ' -f1)
[ "$first" -gt 1 ] || fail "the 2-rank resume started again from step 1"
same_losses "$WORK/curve.d" "$WORK/curve.a" "1 process killed, resumed by 2 ranks from step $first"

note "a rank that stops answering (SIGSTOP): the job ends after US_MPI_TIMEOUT_S"
US_MPI_TIMEOUT_S=3 start_mpi train_e 2 train "$WORK/lm.json" $(out_of e)
wait_until 120 checkpoint_in e || { show "$WORK/train_e.err"; fail "no checkpoint within 120 s"; }
pid=$(rank_pid "$MPI_PID" 1) || fail "rank 1 of mpirun (pid $MPI_PID) not found"
kill -STOP "$pid"
ok=0
wait_until 90 bash -c "! kill -0 $MPI_PID 2>/dev/null" || ok=1
kill -KILL "$pid" 2>/dev/null || true
[ "$ok" -eq 0 ] || { show "$WORK/train_e.err"; fail "mpirun still runs 90 s after rank 1 stopped (timeout 3 s)"; }
wait_us "$MPI_PID"
[ "$RC" -ne 0 ] || fail "mpirun exited 0 although rank 1 stopped answering"
assert_grep "$WORK/train_e.err" 'rank 0 of 2 waited 3 s in the gradient allreduce at step [0-9]+' "rank 0 names the wait"
assert_grep "$WORK/train_e.err" 'the last checkpoint resumes' "the message names the way out"
expect_ok train_e1 train "$WORK/lm.json" $(out_of e)

note "a time budget under mpirun: every rank plans, checks and stops at the same step"
# the plan is made from rank 0's clock (one small allreduce a step); a rank planning from its own
# clock would stop alone and leave the other waiting in the gradient allreduce (the watchdog below
# turns such a hang into an error within 60 s)
US_MPI_TIMEOUT_S=60 mpi train_g 2 train "$WORK/lm.json" $(out_of g) --set student.steps=0 \
  --set student.train_minutes=0.05
[ "$RC" -eq 0 ] || { show "$WORK/train_g.out" "$WORK/train_g.err"; fail "mpirun -np 2 train with a 3 s budget exited $RC"; }
[ -s "$WORK/g/student.bin" ] || fail "the budgeted 2-rank run wrote no model"
assert_eq "$(grep -c '^train: .*student.bin: trained on' "$WORK/train_g.out")" 1 "one train line (rank 0 prints)"

note "only train runs under mpirun"
mpi label_f 2 label "$WORK/lm.json" $(out_of f)
[ "$RC" -ne 0 ] || fail "mpirun -np 2 label exited 0"
assert_grep "$WORK/label_f.err" "only .train. runs under mpirun" "label refuses to run N times"
note "LoRA under mpirun: 2 ranks give 1 process's curve; a killed LoRA run resumes with N = 2"
# the base: the model trained above, exported as Q8_0 (so the ranks keep it quantised too)
expect_ok export_base export "$WORK/a/student.bin" --format gguf --type q8_0 -o "$WORK/base.gguf"
for w in h i j; do cp -r "$WORK/out" "$WORK/$w"; done
write_config "$WORK/lora.json" 'task={"type":"generate","template":"{text}"}' "${LM[@]}" \
  "student.init=\"$WORK/base.gguf\"" student.lora_rank=4 student.lora_alpha=8 \
  student.lm_lr=0.01
expect_ok train_h train "$WORK/lora.json" $(out_of h)
curve h >"$WORK/curve.h"
[ "$(wc -l <"$WORK/curve.h")" -eq "$STEPS" ] || fail "the LoRA reference curve has $(wc -l <"$WORK/curve.h") steps, not $STEPS"
mpi train_i 2 train "$WORK/lora.json" $(out_of i)
[ "$RC" -eq 0 ] || { show "$WORK/train_i.out" "$WORK/train_i.err"; fail "mpirun -np 2 LoRA train exited $RC"; }
curve i >"$WORK/curve.i"
[ "$(wc -l <"$WORK/curve.i")" -eq "$STEPS" ] || fail "the 2-rank LoRA curve has $(wc -l <"$WORK/curve.i") steps, not $STEPS"
same_losses "$WORK/curve.i" "$WORK/curve.h" "LoRA: 2 ranks against 1 process"
cmp -s "$WORK/curve.h" "$WORK/curve.i" && note "(the LoRA curves are identical to 7 decimals)"
start_us train_j train "$WORK/lora.json" $(out_of j)
wait_until 120 checkpoint_in j || { show "$WORK/train_j.err"; fail "no LoRA checkpoint within 120 s"; }
kill -KILL "$US_PID"
wait_us
[ ! -e "$WORK/j/student.bin" ] || fail "the LoRA run finished before the kill; nothing to resume"
head -c 4 "$WORK"/j/student-*.ckpt | grep -q USLA || fail "the LoRA checkpoint is not an adapter checkpoint"
mpi train_j2 2 train "$WORK/lora.json" $(out_of j)
[ "$RC" -eq 0 ] || { show "$WORK/train_j2.out" "$WORK/train_j2.err"; fail "mpirun -np 2 LoRA resume exited $RC"; }
curve j >"$WORK/curve.j"
first=$(head -n1 "$WORK/curve.j" | cut -d' ' -f1)
[ "$first" -gt 1 ] || fail "the 2-rank LoRA resume started again from step 1"
assert_eq "$(tail -n1 "$WORK/curve.j" | cut -d" " -f1)" "$STEPS" "the resumed LoRA train ends at the last step"
same_losses "$WORK/curve.j" "$WORK/curve.h" "LoRA: 1 process killed, resumed by 2 ranks from step $first"

note "ok"
