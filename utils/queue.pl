#!/usr/bin/env perl
# queue.pl: run a command, or an array of copies of it, on Grid Engine (qsub).
#
# Same command line as run.pl:
#   queue.pl [options] JOB=1:N <log-with-JOB> <command> [<args>...]
#   queue.pl [options] <log> <command> [<args>...]
#
# It writes a job script to <logdir>/q/<name>.sh, submits ONE array job
# (qsub -t 1:N) whose task i runs the command with JOB replaced by i, writes
# the same log header and footer as run.pl and then a marker file holding the
# exit code. queue.pl waits for the markers; a task that leaves the queue
# without writing one (killed, out of memory, time limit) counts as failed
# after a grace period. Exit status 1 when any task failed, naming the logs.
#
# Options --mem, --num-threads, --gpu, --max-jobs-run (and any other
# --name value listed in the config) are mapped to qsub switches through a
# config file: --config F, else conf/queue.conf if it exists, else the
# built-in one below. Config format (Kaldi's):
#   command qsub -v PATH -cwd -S /bin/bash -j y   # the submit command
#   option mem=* -l mem_free=$0,ram_free=$0       # $0 = the option's value
#   option mem=0                                  # this exact value: no switch
#   default gpu=0                                 # value used when not given
# Switches given with one dash (-l h_rt=1:00:00, -q all.q) go to qsub as is.
#
# Environment, for tuning (and tests): BLJUST_LAUNCH_POLL (first poll
# interval, s, default 0.5; grows to BLJUST_LAUNCH_POLL_MAX, default 5),
# BLJUST_LAUNCH_QUERY (least seconds between scheduler queries, default 10),
# BLJUST_LAUNCH_GRACE (seconds a task may be missing from the queue without a
# marker before it counts as failed, default 30: shared file systems are slow).
#
# slurm.pl loads this file and uses cluster_main() with its own backend.
use strict;
use warnings;
use Cwd qw(abs_path getcwd);
use File::Basename qw(dirname basename);
use File::Glob qw(bsd_glob);
use File::Path qw(make_path);
use Text::ParseWords qw(shellwords);
use Time::HiRes ();
BEGIN { require(dirname(abs_path(__FILE__)) . '/run.pl'); }

my $SGE_CONFIG = <<'EOF';
command qsub -v PATH -cwd -S /bin/bash -j y
option name=* -N $0
option mem=* -l mem_free=$0,ram_free=$0
option mem=0
option num_threads=* -pe smp $0
option num_threads=1
option max_jobs_run=* -tc $0
default gpu=0
option gpu=0
option gpu=* -l gpu=$0 -q g.q
EOF

# Runs a command (list form, no shell); returns (exit status, stdout+stderr).
sub cluster_capture {
  my @cmd = @_;
  my $pid = open(my $fh, '-|');
  return (127, "cannot fork: $!") unless defined $pid;
  if ($pid == 0) {
    open(STDERR, '>&', \*STDOUT);
    exec { $cmd[0] } @cmd or do { print "cannot run $cmd[0]: $!\n"; exit 127; };
  }
  local $/;
  my $out = <$fh>;
  close($fh);
  return ($? >> 8, defined $out ? $out : '');
}

# Parses Kaldi's config format. Returns { command => [...],
# exact => {name => {value => [words]}}, wild => {name => [words]}, defaults => {} }.
sub cluster_read_config {
  my ($prog, $text, $where) = @_;
  my %c = (command => undef, exact => {}, wild => {}, defaults => {});
  my $n = 0;
  for my $line (split /\n/, $text) {
    $n++;
    $line =~ s/\s*#.*$//;
    next if $line =~ /^\s*$/;
    my @w = shellwords($line);
    my $kind = shift @w;
    if ($kind eq 'command') {
      launcher_fail($prog, "$where:$n: 'command' line has no command") unless @w;
      $c{command} = \@w;
    } elsif (($kind eq 'option' || $kind eq 'default') && @w && $w[0] =~ /^(\w+)=(.*)$/) {
      my ($name, $value) = ($1, $2);
      shift @w;
      if ($kind eq 'default') {
        $c{defaults}{$name} = $value;
      } elsif ($value eq '*') {
        $c{wild}{$name} = \@w;
      } else {
        $c{exact}{$name}{$value} = \@w;
      }
    } else {
      launcher_fail($prog, "$where:$n: cannot parse '$line' (expected 'command ...', "
                    . "'option name=value ...', 'option name=* ... \$0 ...' or 'default name=value')");
    }
  }
  launcher_fail($prog, "$where: no 'command' line") unless $c{command};
  return \%c;
}

# The scheduler switches for one option value, per the config.
sub cluster_map_option {
  my ($prog, $conf, $where, $name, $value) = @_;
  return @{ $conf->{exact}{$name}{$value} } if exists $conf->{exact}{$name}{$value};
  if (exists $conf->{wild}{$name}) {
    return map { s/\$0/$value/gr } @{ $conf->{wild}{$name} };
  }
  (my $dashed = "--$name") =~ s/_/-/g;
  launcher_fail($prog, "option $dashed $value is not supported by the config ($where); "
                . "add a line 'option $name=* <switches using \$0>'");
}

sub cluster_shell_quote {
  my ($s) = @_;
  $s =~ s/'/'\\''/g;
  return "'$s'";
}

# The job script: runs one array task, named by the scheduler's task variable.
sub cluster_job_script {
  my (%p) = @_;
  my $q = \&cluster_shell_quote;
  my $tv = $p{task_var};
  my $s = "#!/bin/bash\n"
    . "# Written by $p{prog}: array task \$$tv runs the command below with"
    . (defined $p{jobname} ? " $p{jobname} replaced by the task id.\n" : " no job variable.\n")
    . "# Submitted with: $p{submit}\n"
    . "cd " . $q->($p{cwd}) . " || exit 1\n"
    . "[ -f ./path.sh ] && . ./path.sh\n"
    . "task_id=\${$tv:?\$0: $tv is not set (submit this script as an array job)}\n"
    . "cmd=" . $q->($p{cmd}) . "\n"
    . "log=" . $q->($p{log}) . "\n";
  if (defined $p{jobname}) {
    $s .= "cmd=\${cmd//$p{jobname}/\$task_id}\nlog=\${log//$p{jobname}/\$task_id}\n";
  }
  $s .= "marker=" . $q->("$p{qdir}/done.$p{tag}.") . "\$task_id\n"
    . "mkdir -p \"\$(dirname \"\$log\")\"\n"
    . "if ! { printf '# %s\\n' \"\$cmd\"; echo \"# Started at \$(date)\";\n"
    . "       echo \"# Running on \$(hostname), task \$task_id of job \${$p{jobid_var}:-?}\"; echo '#'; } > \"\$log\"; then\n"
    . "  echo 1 > \"\$marker\"; exit 1\nfi\n"
    . "start=\$(date +%s)\n"
    . "( eval \"\$cmd\" ) >> \"\$log\" 2>&1\n"
    . "rc=\$?\n"
    . "end=\$(date +%s)\n"
    . "echo \"# Accounting: time=\$((end - start)) threads=$p{threads}\" >> \"\$log\"\n"
    . "echo \"# Ended (code \$rc) at \$(date), elapsed time \$((end - start)) seconds\" >> \"\$log\"\n"
    . "echo \"\$rc\" > \"\$marker.tmp\" && mv -f \"\$marker.tmp\" \"\$marker\"\n"
    . "exit \$rc\n";
  return $s;
}

sub cluster_env_seconds {
  my ($name, $default) = @_;
  my $v = $ENV{$name};
  return (defined $v && $v =~ /^\d+(\.\d+)?$/) ? $v + 0 : $default;
}

# Backend: prog, conf_file, config (built-in text), task_var, jobid_var,
# array_args(start, end, max_jobs_run or undef), output_args(qdir, base),
# queue_log(qdir, base, task), job_id(submit output), alive(jobid) -> hash ref
# of task ids still queued/running or undef when unknown, why(jobid, task),
# cancel(jobid), special_max_jobs (max_jobs_run handled by array_args).
sub cluster_main {
  my ($be, @argv) = @_;
  my $prog = $be->{prog};
  my $usage = "Usage: $prog [options] [JOB=1:N] <log> <command> [<args>...]\n"
    . "  e.g.: $prog --mem 4G JOB=1:10 exp/log/x.JOB.log echo JOB\n";
  my $args = launcher_parse_args($prog, $usage, @argv);
  my %cli = %{ $args->{opts} };

  my ($text, $where);
  if (defined(my $f = delete $cli{config})) {
    open(my $fh, '<', $f) or launcher_fail($prog, "cannot read config file $f: $!");
    local $/;
    ($text, $where) = (<$fh>, $f);
  } elsif (-f $be->{conf_file}) {
    open(my $fh, '<', $be->{conf_file}) or launcher_fail($prog, "cannot read $be->{conf_file}: $!");
    local $/;
    ($text, $where) = (<$fh>, $be->{conf_file});
  } else {
    ($text, $where) = ($be->{config}, "built-in config of $prog");
  }
  my $conf = cluster_read_config($prog, $text, $where);
  my %opt = (%{ $conf->{defaults} }, %cli);
  my $threads = defined $opt{num_threads}
    ? launcher_check_count($prog, 'num_threads', $opt{num_threads}) : 1;
  my $max_jobs;
  if (defined $opt{max_jobs_run}) {
    $max_jobs = launcher_check_count($prog, 'max_jobs_run', $opt{max_jobs_run});
    delete $opt{max_jobs_run} if $be->{special_max_jobs} && !exists $conf->{wild}{max_jobs_run};
  }
  my @switches;
  for my $name (sort keys %opt) {
    push @switches, cluster_map_option($prog, $conf, $where, $name, $opt{$name});
  }
  push @switches, @{ $args->{raw} };

  my $single = !defined $args->{jobname};
  my ($start, $end) = $single ? (1, 1) : ($args->{start}, $args->{end});
  launcher_fail($prog, "job ids must start at 1 or more on this scheduler")
    if $start < $be->{min_task};
  my $cwd = getcwd();
  my $log = $args->{log};
  my $logdir = dirname($log);
  # A log like exp/JOB/x.log: keep the scripts above the per-job folders.
  $logdir = dirname($logdir) while !$single && index($logdir, $args->{jobname}) >= 0;
  make_path("$logdir/q", { error => \my $err }) unless -d "$logdir/q";
  launcher_fail($prog, "cannot create $logdir/q") unless -d "$logdir/q";
  my $qdir = abs_path("$logdir/q");
  my $base = basename($log);
  $base =~ s/\.?\Q$args->{jobname}\E//g unless $single;
  $base =~ s/\.[^.]+$//;
  $base = 'job' if $base eq '';
  my $tag = "$base.$$";
  my $script = "$qdir/$base.sh";
  my @submit = (@{ $conf->{command} }, @switches,
                $be->{array_args}->($start, $end, $be->{special_max_jobs} ? $max_jobs : undef),
                $be->{output_args}->($qdir, $base), $script);

  my $body = cluster_job_script(
    prog => $prog, task_var => $be->{task_var}, jobid_var => $be->{jobid_var},
    jobname => $args->{jobname}, cwd => $cwd, cmd => $args->{cmd}, log => $log,
    qdir => $qdir, tag => $tag, threads => $threads,
    submit => join(' ', map { launcher_quote_word($_) } @submit));
  unlink(bsd_glob("$qdir/done.$tag.*"));
  open(my $sf, '>', "$script.tmp") or launcher_fail($prog, "cannot write $script.tmp: $!");
  print $sf $body;
  close($sf) or launcher_fail($prog, "cannot write $script.tmp: $!");
  chmod(0755, "$script.tmp");
  rename("$script.tmp", $script) or launcher_fail($prog, "cannot rename $script.tmp: $!");

  my ($st, $out) = cluster_capture(@submit);
  my $jobid = $st == 0 ? $be->{job_id}->($out) : undef;
  unless (defined $jobid) {
    launcher_fail($prog, "submitting the job failed (exit status $st); command was:\n  "
                  . join(' ', @submit) . "\noutput:\n$out");
  }

  my $stop = sub {
    my ($sig) = @_;
    $be->{cancel}->($jobid);
    print STDERR "$prog: got SIG$sig, cancelled job $jobid\n";
    exit($sig eq 'INT' ? 130 : 143);
  };
  local $SIG{INT} = $stop;
  local $SIG{TERM} = $stop;
  local $SIG{HUP} = $stop;

  my $now = \&Time::HiRes::time;
  my $interval = cluster_env_seconds('BLJUST_LAUNCH_POLL', 0.5);
  my $max_interval = cluster_env_seconds('BLJUST_LAUNCH_POLL_MAX', 5);
  my $query_every = cluster_env_seconds('BLJUST_LAUNCH_QUERY', 10);
  my $grace = cluster_env_seconds('BLJUST_LAUNCH_GRACE', 30);
  my %pending = map { $_ => 1 } ($start .. $end);
  my (%rc, %missing_since, %why);
  my $last_query = $now->();
  my $read_markers = sub {
    # Listing the directory makes NFS clients refresh it before we look.
    if (opendir(my $dh, $qdir)) { closedir($dh); }
    for my $t (keys %pending) {
      my $m = "$qdir/done.$tag.$t";
      next unless -f $m;
      open(my $fh, '<', $m) or next;
      my $code = <$fh>;
      close($fh);
      $rc{$t} = (defined $code && $code =~ /^\s*(\d+)/) ? $1 : 1;
      delete $pending{$t};
      delete $missing_since{$t};
    }
  };
  while (1) {
    $read_markers->();
    last unless %pending;
    my $t_now = $now->();
    if ($t_now - $last_query >= $query_every) {
      $last_query = $t_now;
      my $alive = $be->{alive}->($jobid);
      if (defined $alive) {
        for my $t (keys %pending) {
          if ($alive->{$t}) { delete $missing_since{$t}; }
          else { $missing_since{$t} //= $t_now; }
        }
      }
    }
    my @gone = grep { defined $missing_since{$_} && $t_now - $missing_since{$_} >= $grace }
               keys %pending;
    if (@gone) {
      $read_markers->();
      for my $t (grep { $pending{$_} } @gone) {
        delete $pending{$t};
        $rc{$t} = 'vanished';
        $why{$t} = $be->{why}->($jobid, $t);
      }
    }
    last unless %pending;
    Time::HiRes::sleep($interval);
    $interval = $interval * 1.5 > $max_interval ? $max_interval : $interval * 1.5;
  }

  my @failed = sort { $a <=> $b } grep { $rc{$_} ne '0' } keys %rc;
  for my $t (grep { $rc{$_} eq 'vanished' } @failed) {
    my $tlog = launcher_subst($log, $args->{jobname}, $t);
    my $qlog = $be->{queue_log}->($qdir, $base, $t);
    my $msg = "# $prog: task $t of job $jobid left the queue without writing its exit status"
      . "$why{$t}; it was probably killed (time or memory limit, node failure); "
      . "scheduler output: $qlog";
    make_path(dirname($tlog), { error => \my $e2 });
    if (open(my $fh, '>>', $tlog)) { print $fh "$msg\n"; close($fh); }
    print STDERR substr($msg, 2), "\n";
  }
  unlink(bsd_glob("$qdir/done.$tag.*"));
  return 0 unless @failed;
  launcher_report_failures($prog, $single, $end - $start + 1,
                           map { launcher_subst($log, $args->{jobname}, $_) } @failed);
  return 1;
}

# Task ids from a list like "3", "5-9", "1-10:1", "[2-4%2]", "3,5,7-8".
sub cluster_parse_task_list {
  my ($spec, $into) = @_;
  $spec =~ s/[\[\]]//g;
  $spec =~ s/%\d+$//;
  for my $part (split /,/, $spec) {
    if ($part =~ /^(\d+)$/) { $into->{$1} = 1; }
    elsif ($part =~ /^(\d+)-(\d+)(?::(\d+))?$/) {
      my $step = $3 || 1;
      for (my $i = $1; $i <= $2; $i += $step) { $into->{$i} = 1; }
    }
  }
}

my $warned_error_state = 0;
my %SGE = (
  prog => 'queue.pl', conf_file => 'conf/queue.conf', config => $SGE_CONFIG,
  task_var => 'SGE_TASK_ID', jobid_var => 'JOB_ID', min_task => 1,
  special_max_jobs => 0,
  array_args => sub { my ($s, $e) = @_; return ('-t', "$s:$e"); },
  output_args => sub { my ($qdir, $base) = @_; return ('-o', "$qdir/$base.log"); },
  queue_log => sub { my ($qdir, $base) = @_; return "$qdir/$base.log"; },
  job_id => sub { return $_[0] =~ /Your job(?:-array)? (\d+)/ ? $1 : undef; },
  alive => sub {
    my ($jobid) = @_;
    my ($st, $out) = cluster_capture('qstat', '-g', 'd');
    return undef if $st != 0;
    my %alive;
    for my $line (split /\n/, $out) {
      my @f = split ' ', $line;
      next unless @f >= 5 && $f[0] eq $jobid;
      if ($f[4] =~ /E/ && !$warned_error_state++) {
        print STDERR "queue.pl: job $jobid has tasks in error state ($f[4]); "
          . "see qstat -j $jobid, then qmod -cj $jobid or qdel $jobid\n";
      }
      cluster_parse_task_list($f[-1], \%alive);
    }
    return \%alive;
  },
  why => sub { return ''; },
  cancel => sub { cluster_capture('qdel', $_[0]); },
);

exit(cluster_main(\%SGE, @ARGV)) unless caller;
1;
