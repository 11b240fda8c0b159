import pytest

from earlyfusion.atomic import atomic_path


def test_complete_write_lands_and_leaves_no_temporary(tmp_path):
    with atomic_path(tmp_path / "sub" / "f.txt") as tmp:
        tmp.write_text("whole")
    assert (tmp_path / "sub" / "f.txt").read_text() == "whole"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.txt"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "f.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert (tmp_path / "f.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
