#!/usr/bin/env perl
# run.pl: run a command, or an array of copies of it, on this machine.
#
# Usage:
#   run.pl [options] JOB=1:N <log-with-JOB> <command> [<args>...]
#   run.pl [options] <log> <command> [<args>...]
#
# Every occurrence of the job variable (the name before '=', here JOB) in the
# command and in the log name is replaced by the job's number. Each job writes
# its output to its own log, framed by a header (the command, start time) and
# a footer (accounting line, exit code, elapsed time).
#
# The command runs through bash. Words without white space are passed as they
# are, so an escaped \| or \> builds a pipeline or a redirection as in Kaldi
# recipes; words containing white space (e.g. "ark:gunzip -c a.gz |") are
# quoted so that they reach the command as one argument.
#
# Options (before or after JOB=1:N):
#   --max-jobs-run K   run at most K jobs at once (default: number of CPUs,
#                      or of GPUs when --gpu is given and nvidia-smi works)
#                      (the machine's CPUs, nproc --all: OMP_NUM_THREADS does not lower it)
#   --num-threads N    recorded in the accounting line
#   --gpu N, --mem X   recorded in the log; nothing is enforced locally
#   --config F, any other --name value, and -x value: accepted and ignored,
#                      so a cmd.sh written for queue.pl or slurm.pl works here.
#
# On failure run.pl exits 1 and names the failed logs on stderr. On SIGINT, SIGTERM or
# SIGHUP it sends SIGTERM to every running job's process group, waits up to
# $BLJUST_RUNPL_KILL_AFTER seconds (default 10), sends SIGKILL to what is left, and exits.
#
# queue.pl and slurm.pl load this file for the command-line parsing below;
# the main program only runs when this file is executed.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use POSIX qw(strftime);

sub launcher_fail {
  my ($prog, $msg) = @_;
  print STDERR "$prog: $msg\n";
  exit 1;
}

# Same format as date(1), so the logs look like Kaldi's.
sub launcher_date {
  return strftime('%a %b %e %H:%M:%S %Z %Y', localtime);
}

# One word of the command line: kept as is when it has no white space (so that
# '|', '>', '&&' keep their shell meaning), single-quoted otherwise.
sub launcher_quote_word {
  my ($w) = @_;
  return $w if $w =~ /^\S+$/;
  $w =~ s/'/'\\''/g;
  return "'$w'";
}

# Parses the command line shared by run.pl, queue.pl and slurm.pl.
# Returns a hash ref: opts (name => value, dashes turned into underscores),
# raw (scheduler switches given with one dash, e.g. -l h_rt=1:00:00),
# jobname/start/end (undef jobname for the single-job form), log, cmd.
sub launcher_parse_args {
  my ($prog, $usage, @argv) = @_;
  my (%opts, @raw, $jobname, $start, $end);
  while (@argv) {
    my $w = $argv[0];
    if ($w =~ /^--([A-Za-z][\w-]*)=(.*)$/s) {
      shift @argv;
      (my $name = $1) =~ s/-/_/g;
      $opts{$name} = $2;
    } elsif ($w =~ /^--([A-Za-z][\w-]*)$/) {
      launcher_fail($prog, "option $w needs a value") if @argv < 2;
      shift @argv;
      (my $name = $1) =~ s/-/_/g;
      $opts{$name} = shift @argv;
    } elsif ($w =~ /^([A-Za-z_]\w*)=(\d+)(?::(\d+))?$/) {
      launcher_fail($prog, "more than one job range given ($jobname and $w)")
        if defined $jobname;
      shift @argv;
      ($jobname, $start, $end) = ($1, $2, defined $3 ? $3 : $2);
      launcher_fail($prog, "invalid job range $w: end is before start") if $end < $start;
    } elsif ($w =~ /^-[A-Za-z]/) {
      # Raw scheduler switch, as Kaldi's queue.pl allows: -V alone, -pe with
      # two values, anything else with one.
      shift @argv;
      my $n = $w eq '-V' ? 0 : $w eq '-pe' ? 2 : 1;
      launcher_fail($prog, "switch $w needs $n value(s)") if @argv < $n;
      push @raw, $w, splice(@argv, 0, $n);
    } else {
      last;
    }
  }
  if (@argv < 2) {
    print STDERR $usage;
    exit 1;
  }
  my $log = shift @argv;
  if (defined $jobname && $end > $start && index($log, $jobname) < 0) {
    launcher_fail($prog, ($end - $start + 1) . " jobs would all write to one log, $log; "
                  . "put $jobname in the log name");
  }
  my $cmd = join(' ', map { launcher_quote_word($_) } @argv);
  return { opts => \%opts, raw => \@raw, jobname => $jobname, start => $start,
           end => $end, log => $log, cmd => $cmd };
}

# Replaces the job variable by a job number (plain substring replacement,
# as Kaldi does: data/split4/JOB and foo.JOB.log both work).
sub launcher_subst {
  my ($text, $jobname, $id) = @_;
  return $text unless defined $jobname;
  $text =~ s/\Q$jobname\E/$id/g;
  return $text;
}

sub launcher_check_count {
  my ($prog, $name, $value) = @_;
  launcher_fail($prog, "--" . ($name =~ s/_/-/gr) . " must be a positive integer, got '$value'")
    unless $value =~ /^\d+$/ && $value > 0;
  return $value + 0;
}

# The "K / N failed" summary plus the list of failed logs, on stderr.
sub launcher_report_failures {
  my ($prog, $single, $n, @failed_logs) = @_;
  if ($single) {
    print STDERR "$prog: job failed, log is in $failed_logs[0]\n";
    return;
  }
  my $k = scalar @failed_logs;
  print STDERR "$prog: $k / $n failed, log is in $failed_logs[0]\n";
  my $show = $k > 20 ? 20 : $k;
  print STDERR "$prog: failed logs:\n";
  print STDERR "  $_\n" for @failed_logs[0 .. $show - 1];
  print STDERR "  ... and " . ($k - $show) . " more\n" if $k > $show;
}

sub run_default_parallelism {
  my ($gpu) = @_;
  if (defined $gpu && $gpu =~ /^\d+$/ && $gpu > 0) {
    my @gpus = grep { /^GPU \d+/ } `nvidia-smi -L 2>/dev/null`;
    return scalar @gpus if @gpus;
  }
  # The machine's CPUs, not OMP_NUM_THREADS: GNU nproc follows that variable, which
  # path.sh sets to 1 for each job's own threads, and would then run the jobs one by one.
  my $n = `nproc --all 2>/dev/null`;
  return $n + 0 if defined $n && $n =~ /^\s*(\d+)\s*$/ && $1 > 0;
  if (open(my $fh, '<', '/proc/cpuinfo')) {
    my $c = grep { /^processor\s*:/ } <$fh>;
    close($fh);
    return $c if $c > 0;
  }
  $n = `sysctl -n hw.ncpu 2>/dev/null`;  # macOS
  return $n + 0 if defined $n && $n =~ /^\s*(\d+)\s*$/ && $1 > 0;
  return 1;
}

# Child side of one job: header, command through bash, footer. Returns the
# command's exit code (128 + signal when it was killed).
sub run_one_job {
  my ($cmd, $log, $threads, $requested) = @_;
  my $dir = dirname($log);
  make_path($dir, { error => \my $err }) unless -d $dir;
  my $fh;
  unless (open($fh, '>', $log)) {
    print STDERR "run.pl: cannot write log $log: $!\n";
    return 1;
  }
  print $fh "# $cmd\n# Started at " . launcher_date() . "\n";
  print $fh "# Requested (not enforced by run.pl): $requested\n" if $requested ne '';
  print $fh "#\n";
  close($fh);
  my $t0 = time();
  # A TERM from run.pl (interrupted) reaches bash too; we stay to write the footer.
  local $SIG{TERM} = sub { };
  local $SIG{INT} = sub { };
  open(STDOUT, '>>', $log) or return 1;
  open(STDERR, '>&', \*STDOUT) or return 1;
  system('bash', '-c', $cmd);
  my $st = $?;
  my $rc = $st == -1 ? 127 : ($st & 127) ? 128 + ($st & 127) : $st >> 8;
  my $elapsed = time() - $t0;
  if (open($fh, '>>', $log)) {
    print $fh "# Accounting: time=$elapsed threads=$threads\n";
    print $fh "# Ended (code $rc) at " . launcher_date() . ", elapsed time $elapsed seconds\n";
    close($fh);
  }
  return $rc;
}

sub run_main {
  my @argv = @_;
  my $usage = "Usage: run.pl [options] [JOB=1:N] <log> <command> [<args>...]\n"
    . "  e.g.: run.pl --max-jobs-run 4 JOB=1:10 exp/log/x.JOB.log echo JOB\n";
  my $args = launcher_parse_args('run.pl', $usage, @argv);
  my %o = %{ $args->{opts} };
  my $max = defined $o{max_jobs_run}
    ? launcher_check_count('run.pl', 'max_jobs_run', $o{max_jobs_run})
    : run_default_parallelism($o{gpu});
  my $threads = defined $o{num_threads}
    ? launcher_check_count('run.pl', 'num_threads', $o{num_threads}) : 1;
  my $requested = join(' ', map { "$_=$o{$_}" } grep { defined $o{$_} } qw(gpu mem num_threads));
  my $single = !defined $args->{jobname};
  my @ids = $single ? (1) : ($args->{start} .. $args->{end});

  my (%running, @failed);    # pid => job id
  my $reap = sub {
    my $pid = waitpid(-1, 0);
    return if $pid <= 0 || !exists $running{$pid};
    my $id = delete $running{$pid};
    my $st = $?;
    push @failed, $id if $st != 0;
  };
  # Killing the recipe's process group (Ctrl-C, kill -- -PGID, a closed terminal) reaches
  # run.pl but not its jobs, which run in process groups of their own: pass the signal on
  # as TERM, give the jobs a grace period to exit, then KILL what is left, and only then
  # exit, so that no job keeps writing into an experiment folder after its launcher is gone.
  my $interrupted = sub {
    my ($sig) = @_;
    $SIG{$_} = 'IGNORE' for qw(INT TERM HUP);
    my @groups = map { -$_ } keys %running;
    kill('TERM', @groups);
    my $grace = $ENV{BLJUST_RUNPL_KILL_AFTER} // 10;
    my $deadline = time() + $grace;
    while (%running && time() < $deadline) {
      my $pid = waitpid(-1, POSIX::WNOHANG());
      if ($pid > 0) { delete $running{$pid}; } else { select(undef, undef, undef, 0.05); }
    }
    if (%running) {
      kill('KILL', map { -$_ } keys %running);
      print STDERR "run.pl: " . scalar(keys %running) . " job(s) ignored SIGTERM for ${grace}s; killed\n";
    }
    1 while waitpid(-1, 0) > 0;
    print STDERR "run.pl: got SIG$sig, stopped the running jobs\n";
    # Die of the same signal, so that a calling shell script stops too (bash carries on
    # after a child that merely exited 130 on Ctrl-C).
    $SIG{$sig} = 'DEFAULT';
    kill($sig, $$);
    exit($sig eq 'INT' ? 130 : 143);
  };
  local $SIG{INT} = $interrupted;
  local $SIG{TERM} = $interrupted;
  local $SIG{HUP} = $interrupted;

  for my $id (@ids) {
    $reap->() while keys(%running) >= $max;
    my $log = launcher_subst($args->{log}, $args->{jobname}, $id);
    my $cmd = launcher_subst($args->{cmd}, $args->{jobname}, $id);
    my $pid = fork();
    launcher_fail('run.pl', "cannot fork: $!") unless defined $pid;
    if ($pid == 0) {
      # Own process group, so that stopping run.pl stops the whole pipeline.
      setpgrp(0, 0);
      $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
      exit(run_one_job($cmd, $log, $threads, $requested));
    }
    $running{$pid} = $id;
  }
  $reap->() while %running;
  return 0 unless @failed;
  my @logs = map { launcher_subst($args->{log}, $args->{jobname}, $_) } sort { $a <=> $b } @failed;
  launcher_report_failures('run.pl', $single, scalar @ids, @logs);
  return 1;
}

exit(run_main(@ARGV)) unless caller;
1;
