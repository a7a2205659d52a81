#!/usr/bin/env perl
# slurm.pl: run a command, or an array of copies of it, on Slurm (sbatch).
#
# Same command line as run.pl and queue.pl:
#   slurm.pl [options] JOB=1:N <log-with-JOB> <command> [<args>...]
#   slurm.pl [options] <log> <command> [<args>...]
#
# It writes a job script to <logdir>/q/<name>.sh and submits ONE array job
# (sbatch --array=1-N, or --array=1-N%K with --max-jobs-run K) whose task i
# runs the command with JOB replaced by i; each task writes the same log
# header and footer as run.pl, then a marker holding its exit code. slurm.pl
# waits for the markers and polls squeue; a task that leaves the queue
# without a marker (time limit, out of memory, node failure) counts as failed
# after a grace period, and sacct's state for it is written into its log.
# Scheduler output of task i: <logdir>/q/<name>.i.log.
#
# Options map to sbatch switches through --config F, else conf/slurm.conf if
# it exists, else the built-in config below (Kaldi's format, see queue.pl).
# --max-jobs-run needs no config line. Switches with one dash (-t 4:00:00,
# -A account) go to sbatch as they are. Polling is tuned by the
# BLJUST_LAUNCH_* variables described in queue.pl.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
BEGIN { require(dirname(abs_path(__FILE__)) . '/queue.pl'); }

my $SLURM_CONFIG = <<'EOF';
command sbatch --export=PATH --ntasks-per-node=1
option time=* --time $0
option mem=* --mem-per-cpu $0
option mem=0
option num_threads=* --cpus-per-task $0
option num_threads=1 --cpus-per-task 1
default gpu=0
option gpu=0
option gpu=* -p gpu --gres=gpu:$0
EOF

my %SLURM = (
  prog => 'slurm.pl', conf_file => 'conf/slurm.conf', config => $SLURM_CONFIG,
  task_var => 'SLURM_ARRAY_TASK_ID', jobid_var => 'SLURM_ARRAY_JOB_ID', min_task => 0,
  special_max_jobs => 1,
  array_args => sub {
    my ($s, $e, $max) = @_;
    return ("--array=$s-$e" . (defined $max ? "%$max" : ''));
  },
  output_args => sub { my ($qdir, $base) = @_; return ('-o', "$qdir/$base.%a.log"); },
  queue_log => sub { my ($qdir, $base, $t) = @_; return "$qdir/$base.$t.log"; },
  job_id => sub { return $_[0] =~ /Submitted batch job (\d+)/ ? $1 : undef; },
  alive => sub {
    my ($jobid) = @_;
    my ($st, $out) = cluster_capture('squeue', '-h', '-r', '-j', $jobid, '-o', '%K');
    if ($st != 0) {
      # Once a finished job is purged, squeue calls its id invalid.
      return ($out =~ /invalid job id/i) ? {} : undef;
    }
    my %alive;
    cluster_parse_task_list($_, \%alive) for grep { /\S/ } map { s/\s+//gr } split /\n/, $out;
    return \%alive;
  },
  why => sub {
    my ($jobid, $t) = @_;
    my ($st, $out) = cluster_capture('sacct', '-n', '-P', '-X', '-j', "${jobid}_$t",
                                     '-o', 'State,ExitCode');
    return '' if $st != 0;
    my ($first) = grep { /\S/ } split /\n/, $out;
    return '' unless defined $first;
    my ($state, $code) = split /\|/, $first;
    return " (sacct: state $state" . (defined $code ? ", exit code $code" : '') . ")";
  },
  cancel => sub { cluster_capture('scancel', $_[0]); },
);

exit(cluster_main(\%SLURM, @ARGV)) unless caller;
1;
