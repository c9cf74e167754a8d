"""The replay service's core in process: mount requests checked field by field, loaded cassettes kept by path,
modification time, size and inode, least recently mounted dropped first, with the scripts built from them; one
Replayer per mount; a control socket used only when it is this user's own."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from gwsvcr.cassette import CassetteCache
from gwsvcr.service import MountError, Service, is_private_socket, parse_mount
from gwsvcr.timeline import Timing
from tests.procs import ROOT

STOP = ROOT / "cassettes" / "stop_call_recording.yaml"


def test_parse_mount_takes_the_options_and_names_every_bad_one() -> None:
    request = parse_mount({"cassette": str(STOP), "timing": "instant", "speed": 2, "strict": False,
                           "json_ignore": ["requestId"]})
    assert request.cassette == str(STOP)
    assert (request.config.timing, request.config.speed, request.config.strict) == (Timing.INSTANT, 2.0, False)
    assert request.config.json_ignore == ("requestId",)
    knobs = parse_mount({"cassette": str(STOP), "ignore_query": ["_"], "match_headers": ["Accept"],
                         "allow_repeats": False}).config
    assert (knobs.ignore_query, knobs.match_headers, knobs.allow_repeats) == (("_",), ("Accept",), False)
    with pytest.raises(MountError) as caught:
        parse_mount({"cassette": "rel.yaml", "speed": 0, "strict": "yes", "json_ignore": "requestId", "port": 1,
                     "match_headers": ["Authorization"]})
    assert len(caught.value.problems) == 6 and caught.value.status == 400
    assert "never equal to a live value" in caught.value.problems[-1]
    with pytest.raises(MountError, match="JSON object"):
        parse_mount(["not", "an", "object"])


def test_cassette_cache_keys_on_path_mtime_size_and_inode(tmp_path: Path) -> None:
    paths = []
    for name in "abc":
        paths.append(str(tmp_path / f"{name}.yaml"))
        shutil.copy(STOP, paths[-1])
    cache = CassetteCache(keep_bytes=2 * STOP.stat().st_size)
    first = cache.get(paths[0])
    assert cache.get(paths[0]) is first and (cache.loads, cache.hits) == (1, 1)
    cache.get(paths[1])
    cache.get(paths[2])  # the least recently used (a) goes
    assert len(cache) == 2 and cache.get(paths[0]) is not first and cache.loads == 4
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert cache.get(paths[0]) is not cache.get(paths[2]) and cache.loads == 5
    # another file put in its place, with the same modification time and size: its inode tells
    other = tmp_path / "other.yaml"
    other.write_text(STOP.read_text().replace("01RCC3N118B1V0SL8O7GK2LAES00000V", "01RCC3N118B1V0SL8O7GK2LAES00000W"))
    before = cache.get(paths[0])
    st = os.stat(paths[0])
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, paths[0])
    assert cache.get(paths[0]) is not before and cache.loads == 6
    last = CassetteCache()  # keep_bytes=0: only the last one, as the replayer addon keeps it
    assert last.get(paths[1]) is last.get(paths[1]) and len(last) == 1
    last.get(paths[2])
    assert len(last) == 1 and last.loads == 2


def test_service_mounts_each_with_its_own_replayer() -> None:
    service = Service()
    one = service.mount(parse_mount({"cassette": str(STOP)}))
    two = service.mount(parse_mount({"cassette": str(STOP), "strict": False}))
    assert one.replayer is not two.replayer and one.replayer.cassette is two.replayer.cassette
    assert {m["id"] for m in service.status()["mounts"]} == {one.id, two.id}
    assert service.unmount(one.id) is one
    with pytest.raises(MountError) as caught:
        service.get(one.id)
    assert caught.value.status == 404
    assert service.close() == [two] and service.status()["unmounted"] == 2


def test_mounts_of_one_cassette_with_the_same_matching_options_share_its_scripts(tmp_path: Path) -> None:
    path = tmp_path / "stop.yaml"
    shutil.copy(STOP, path)
    service = Service()
    one = service.mount(parse_mount({"cassette": str(path), "timing": "instant"}))
    two = service.mount(parse_mount({"cassette": str(path), "strict": False}))  # no part of the scripts
    other = service.mount(parse_mount({"cassette": str(path), "json_ignore": ["requestId"]}))
    assert two.replayer.scripts is one.replayer.scripts and other.replayer.scripts is not one.replayer.scripts
    assert two.replayer.used is not one.replayer.used  # each mount's own state all the same
    path.write_text(path.read_text() + "\n")  # the file changed: loaded and built again
    again = service.mount(parse_mount({"cassette": str(path), "timing": "instant"}))
    assert again.replayer.cassette is not one.replayer.cassette and again.replayer.scripts is not one.replayer.scripts


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets here")
def test_a_control_socket_is_private_when_it_and_its_directory_are_this_users_alone(tmp_path: Path) -> None:
    home = tmp_path / "private"
    home.mkdir(mode=0o700)
    path = home / "control"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listening:
        listening.bind(str(path))
        assert is_private_socket(str(path))
        home.chmod(0o750)  # another user of the group could connect
        assert not is_private_socket(str(path))
    home.chmod(0o700)
    (home / "file").write_text("")
    assert not is_private_socket(str(home / "file")) and not is_private_socket("control")
