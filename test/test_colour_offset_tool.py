"""The s2ml_colour_offset command: a camera's colour-to-depth offset estimated from a bag."""

from bag_helpers import boxes_frame, COLOR, DEPTH, image_msg, write_bag
import numpy as np
import pytest
from s2ml_ros import colour_offset_tool
from s2ml_ros.model import build_s2ml, save_checkpoint
from s2ml_ros.registration import shift_image

N = 3
STAMPS = [1_700_000_000 * 10**9 + i * 33_333_333 for i in range(N)]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.safetensors'
    save_checkpoint(str(path), build_s2ml('tiny'), provenance={'note': 'random init, tests'})
    return str(path)


def _bag_with_colour_moved(path, dy, dx):
    """Write a bag whose colour sits (dy, dx) px off its registered depth (a miscalibration)."""
    colour, depth = {}, {}
    for i, stamp in enumerate(STAMPS):
        rgb, raw = boxes_frame(seed=i)
        colour[i] = image_msg(shift_image(rgb, dy, dx), 'rgb8', stamp)
        depth[i] = image_msg(np.rint(raw * 1000).astype(np.uint16), '16UC1', stamp)
    write_bag(path, n=N, width=160, height=120, overrides={COLOR: colour, DEPTH: depth})
    return path


def test_offset_found_in_a_bag_and_printed_as_node_parameters(tmp_path, checkpoint, capsys):
    bag = _bag_with_colour_moved(tmp_path / 'bag', 0, 2)
    code = colour_offset_tool.main([str(bag), '--checkpoint', checkpoint, '--every', '1',
                                    '--frames', str(N)])
    out = capsys.readouterr().out
    assert code == 0
    # The colour is 2 px right of the depth: moving it 2 px left registers it.
    assert 'colour_offset_x_px: -2\ncolour_offset_y_px: 0' in out
    assert out.count('frame ') >= N


def test_registered_bag_keeps_offset_zero_and_bad_input_exits_2(tmp_path, checkpoint, capsys):
    bag = _bag_with_colour_moved(tmp_path / 'bag', 0, 0)
    assert colour_offset_tool.main([str(bag), '--checkpoint', checkpoint, '--every', '1']) == 0
    assert 'colour_offset_x_px: 0\ncolour_offset_y_px: 0' in capsys.readouterr().out
    assert colour_offset_tool.main([str(tmp_path / 'missing'), '--checkpoint',
                                    checkpoint]) == 2
    assert 'missing' in capsys.readouterr().err
    assert colour_offset_tool.main([str(bag), '--checkpoint', checkpoint, '--frames',
                                    '0']) == 2
    assert 'frames and every must be >= 1, got 0 and 15' in capsys.readouterr().err
