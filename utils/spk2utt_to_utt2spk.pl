#!/usr/bin/env perl
# Usage: utils/spk2utt_to_utt2spk.pl [spk2utt] > utt2spk
use strict; use warnings;
while (<>) {
  my ($spk, @utts) = split;
  defined $spk or die "$0: empty line $.\n";
  print "$_ $spk\n" for @utts;
}
