"""One stm reader for scoring and for corpus preparation."""
import pytest

from bljust.data.corpora.tedlium import IGNORE
from bljust.data.corpora.tedlium import read_stm as read_tedlium_stm
from bljust.score.trn import read_stm
from bljust.utils.fileio import FormatError

STM = """;; LABEL "o" "Overall" "Overall results"
talk1 1 spk1 0.00 1.50 <o,f0,male> hello world
talk1 1 spk1 1.50 2.00 <sil> ignore_time_segment_in_scoring

talk2 A spk2 3.00 4.25 no label here
"""


def test_fields_labels_and_comments(tmp_path):
    p = tmp_path / "x.stm"
    p.write_text(STM)
    rows = read_stm(str(p))
    assert [(r.lineno, r.file, r.channel, r.speaker, r.start, r.end, r.label, r.words) for r in rows] == [
        (2, "talk1", "1", "spk1", 0.0, 1.5, "<o,f0,male>", ["hello", "world"]),
        (3, "talk1", "1", "spk1", 1.5, 2.0, "<sil>", ["ignore_time_segment_in_scoring"]),
        (5, "talk2", "A", "spk2", 3.0, 4.25, "", ["no", "label", "here"])]
    # TED-LIUM's rule: <sil> is a word, not a label (and is cleaned away)
    ted = read_tedlium_stm(str(p))
    assert ted[0] == ("talk1", 0.0, 1.5, "<o,f0,male>", ["hello", "world"])
    assert ted[1][3] == "" and ted[1][4] == [IGNORE]


@pytest.mark.parametrize("line,msg", [("talk1 1 spk1 0.0\n", "x.stm:1: an stm line needs"),
                                      ("talk1 1 spk1 zero 1.0 a\n", "x.stm:1: start/end 'zero'")])
def test_bad_lines_name_file_and_line(tmp_path, line, msg):
    p = tmp_path / "x.stm"
    p.write_text(line)
    with pytest.raises(FormatError, match=msg):
        read_stm(str(p))
