"""The README's two commands are what CI and users run: keep them well-formed."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def first_block_lines() -> list:
    lines, inside = [], False
    for line in open(os.path.join(ROOT, "README.md"), encoding="utf-8"):
        if line.startswith("```"):
            if inside:
                break
            inside = line.strip() in ("```sh", "```bash")
            continue
        if inside:
            lines.append(line.rstrip("\n"))
    return lines


def test_readme_opens_with_the_main_and_the_test_command():
    lines = first_block_lines()
    assert len(lines) >= 2
    main, tests = lines[0], lines[1]
    assert main.startswith("./tools/setup.sh") and "egs/mini_synth/asr1" in main and "run.sh" in main
    assert tests.startswith("./tools/setup.sh") and "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command():
    script = os.path.join(ROOT, ".ci", "run")
    extracted = subprocess.run(
        ["bash", "-c", 'sed -n "/^cmd=/p" "$0" | head -1', script], capture_output=True, text=True).stdout
    assert "README.md" in extracted
    # run the extraction part alone and compare with the README's second line
    awk = extracted.split("$(", 1)[1].rsplit(")", 1)[0]
    got = subprocess.run(["bash", "-c", awk], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert got == first_block_lines()[1]
