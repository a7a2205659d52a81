#!/usr/bin/env perl
# Usage: utils/utt2spk_to_spk2utt.pl [utt2spk] > spk2utt
# Speakers appear in the order of their first utterance; utterances keep input order.
use strict; use warnings;
my (%spk2utt, @order);
while (<>) {
  my @f = split;
  @f == 2 or die "$0: bad utt2spk line $.: $_";
  push @order, $f[1] unless exists $spk2utt{$f[1]};
  push @{$spk2utt{$f[1]}}, $f[0];
}
print "$_ @{$spk2utt{$_}}\n" for @order;
