"""emit_project never overwrites what a user wrote: a folder holding files quiltc did not
put there is refused unless overwrite=True, and even then only the project's own files
are replaced."""

import numpy as np
import pytest

import quiltc as qc
from quiltc import nn, qmodel
from quiltc.mcu.project import PROJECT_MARKER

IMAGES_SHAPE = (4, 8, 8, 1)


@pytest.fixture(scope="module")
def model():
    """A tiny int8 CNN: enough to emit a project, no training needed."""
    images = np.random.default_rng(0).uniform(0, 1, IMAGES_SHAPE).astype(np.float32)
    float_model = nn.Sequential([nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                 nn.Dense(8 * 8 * 8, 10)], seed=0)
    return qmodel.quantize(float_model, images, 8)


def test_a_folder_with_a_users_files_is_refused_and_left_alone(tmp_path, model):
    (tmp_path / "Makefile").write_text("my own build\n")
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(qc.QuiltError, match=r"already holds files quiltc did not write "
                       r"\(Makefile, main\.c\); emit into a new or empty folder, or pass "
                       r"overwrite=True"):
        qc.mcu.emit_project(model, tmp_path)
    assert (tmp_path / "Makefile").read_text() == "my own build\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "main.c"]


def test_overwrite_replaces_only_the_projects_own_files(tmp_path, model):
    (tmp_path / "Makefile").write_text("my own build\n")
    (tmp_path / "notes.txt").write_text("keep me\n")
    qc.mcu.emit_project(model, tmp_path, overwrite=True)
    assert (tmp_path / "Makefile").read_text() != "my own build\n"
    assert (tmp_path / "notes.txt").read_text() == "keep me\n"
    assert (tmp_path / PROJECT_MARKER).is_file()


def test_a_folder_quiltc_wrote_is_written_again(tmp_path, model):
    folder = qc.mcu.emit_project(model, tmp_path / "project")
    (folder / "firmware.elf").write_bytes(b"built by make")
    assert qc.mcu.emit_project(model, folder) == folder
    assert (folder / "firmware.elf").read_bytes() == b"built by make"


def test_a_file_in_place_of_the_folder_is_refused(tmp_path, model):
    (tmp_path / "project").write_text("not a folder")
    with pytest.raises(qc.QuiltError, match=r"is a file, not a folder"):
        qc.mcu.emit_project(model, tmp_path / "project")
