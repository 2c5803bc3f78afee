"""The argument handling and output of ``kafka-metadata-quorum add-controller /
remove-controller`` (tools/quorum_membership.py) and ``kafka-features`` (tools/features.py)
that need no cluster: what a controller's properties file says, Kafka's messages for bad input,
dry runs, and the offline lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.meta_properties import MetaProperties, write_meta_properties
from tools import features, metadata_quorum
from tools.cli_client import CliError
from tools.quorum_membership import controller_to_add

DIR_ID = "f2D9cXJ1T8Wb0lAQmiR3hQ"


def controller_config(tmp_path: Path, **overrides: str | None) -> Path:
    meta = tmp_path / "meta"
    write_meta_properties(meta, MetaProperties("MkU3OEVBNTcwNTJENDM2Qg", 4, directory_id=DIR_ID))
    props: dict[str, str | None] = {
        "node.id": "4", "process.roles": "controller",
        "listeners": "CONTROLLER://127.0.0.1:9193,OTHER://:9194",
        "controller.listener.names": "CONTROLLER", "metadata.log.dir": str(meta),
        "log.dirs": str(tmp_path / "data")}
    props.update(overrides)
    path = tmp_path / "controller.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items() if v is not None))
    return path


def test_controller_to_add_reads_id_directory_and_endpoints(tmp_path: Path) -> None:
    c = controller_to_add(str(controller_config(tmp_path)))
    assert (c.node_id, c.directory_id, c.endpoints) == (4, DIR_ID,
                                                         (("CONTROLLER", "127.0.0.1", 9193),))
    # advertised.listeners win; a listener without a host is localhost; both names listed.
    c = controller_to_add(str(controller_config(
        tmp_path, **{"advertised.listeners": "CONTROLLER://ctl-4:9193",
                     "controller.listener.names": "CONTROLLER,OTHER"})))
    assert c.endpoints_text() == "CONTROLLER://ctl-4:9193, OTHER://localhost:9194"
    # No metadata.log.dir: the first log.dirs entry.
    c = controller_to_add(str(controller_config(
        tmp_path, **{"metadata.log.dir": None, "log.dirs": f"{tmp_path / 'meta'},/x"})))
    assert c.directory_id == DIR_ID


@pytest.mark.parametrize(("overrides", "message"), [
    ({"node.id": None}, ("node.id not found in configuration file. Is this a valid "
                         "controller configuration file?")),
    ({"node.id": "-1"}, "node.id was negative in configuration file."),
    ({"process.roles": "broker"}, "process.roles did not contain 'controller'"),
    ({"metadata.log.dir": None, "log.dirs": None}, "Neither metadata.log.dir nor log.dirs"),
    ({"controller.listener.names": None}, "controller.listener.names was not found."),
    ({"controller.listener.names": "NOPE"},
     "Cannot find information about controller listener name: NOPE"),
])
def test_controller_to_add_refuses(tmp_path: Path, overrides: dict[str, str | None],
                                   message: str) -> None:
    with pytest.raises(CliError, match=message.replace(".", r"\.").replace("?", r"\?")):
        controller_to_add(str(controller_config(tmp_path, **overrides)))


def test_controller_to_add_needs_a_formatted_metadata_dir(tmp_path: Path) -> None:
    path = controller_config(tmp_path, **{"metadata.log.dir": str(tmp_path / "empty")})
    with pytest.raises(CliError, match="Unable to read meta.properties from"):
        controller_to_add(str(path))
    with pytest.raises(CliError, match="does not exist"):
        controller_to_add(str(tmp_path / "missing.properties"))


def test_membership_dry_runs_and_bad_arguments(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = str(controller_config(tmp_path))
    # Dry runs contact nobody (the bootstrap address is unreachable).
    assert metadata_quorum.main(["--bootstrap-controller", "127.0.0.1:1", "--command-config",
                                 config, "add-controller", "--dry-run"]) == 0
    assert capsys.readouterr().out == (f"DRY RUN of adding controller 4 with directory id "
                                       f"{DIR_ID} and endpoints: CONTROLLER://127.0.0.1:9193\n")
    assert metadata_quorum.main(["--bootstrap-controller", "127.0.0.1:1", "remove-controller",
                                 "-i", "3", "-d", DIR_ID, "--dry-run"]) == 0
    assert capsys.readouterr().out == (
        f"DRY RUN of removing  KRaft controller 3 with directory id {DIR_ID}\n")
    assert metadata_quorum.main(["--bootstrap-controller", "127.0.0.1:1",
                                 "add-controller"]) == 1
    assert capsys.readouterr().err == ("You must supply the configuration file of the controller "
                                       "you are adding when using add-controller.\n")
    assert metadata_quorum.main(["--bootstrap-controller", "127.0.0.1:1", "remove-controller",
                                 "--controller-id", "-2", "-d", DIR_ID]) == 1
    assert capsys.readouterr().err == "Invalid negative --controller-id: -2\n"
    assert metadata_quorum.main(["--bootstrap-controller", "127.0.0.1:1", "remove-controller",
                                 "-i", "2", "-d", "xx"]) == 1
    assert capsys.readouterr().err.startswith("Failed to parse --controller-directory-id: ")
    with pytest.raises(SystemExit):  # --controller-directory-id is required
        metadata_quorum.main(["--bootstrap-controller", "h:1", "remove-controller", "-i", "2"])


def test_features_offline_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert features.main(["version-mapping"]) == 0
    assert capsys.readouterr().out == "metadata.version=25 (4.0-IV3)\nkraft.version=1\n"
    assert features.main(["version-mapping", "--release-version", "3.8-IV0"]) == 0
    assert capsys.readouterr().out == "metadata.version=20 (3.8-IV0)\nkraft.version=0\n"
    assert features.main(["version-mapping", "--release-version", "2.8"]) == 1
    assert capsys.readouterr().err == ("Unknown release version '2.8'. Supported versions are: "
                                       "3.3-IV0 to 4.0-IV3\n")
    assert features.main(["feature-dependencies", "--feature", "kraft.version=1",
                          "--feature", "metadata.version=21"]) == 0
    assert capsys.readouterr().out == ("kraft.version=1 requires:\n"
                                       "    metadata.version=21 (3.9-IV0)\n"
                                       "metadata.version=21 (3.9-IV0) has no dependencies.\n")
    assert features.main(["feature-dependencies", "--feature", "group.version=1"]) == 1
    assert capsys.readouterr().err == "Unknown feature: group.version\n"


def test_features_update_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    boot = ["--bootstrap-server", "127.0.0.1:1"]
    assert features.main([*boot, "upgrade"]) == 1
    assert capsys.readouterr().err == "You must specify at least one feature to upgrade\n"
    assert features.main([*boot, "upgrade", "--release-version", "3.9-IV0", "--feature",
                          "a=1"]) == 1
    assert capsys.readouterr().err == ("Can not specify `release-version` with other feature "
                                       "flags.\n")
    assert features.main([*boot, "upgrade", "--feature", "metadata.version"]) == 1
    assert capsys.readouterr().err == ("Can't parse feature=level string metadata.version: "
                                       "equals sign not found.\n")
    assert features.main([*boot, "upgrade", "--feature", "metadata.version=x"]) == 1
    assert "unable to parse x as a short." in capsys.readouterr().err
    assert features.main([*boot, "downgrade", "--metadata", "9.9-IV9"]) == 1
    assert capsys.readouterr().err.startswith("Unknown metadata.version 9.9-IV9. Supported "
                                              "metadata.version are 3.3-IV0, 3.3-IV1")
    assert features.main([*boot, "disable", "--feature", "a", "--feature", "a"]) == 1
    assert capsys.readouterr().err == "Feature a was specified more than once.\n"
    with pytest.raises(SystemExit):
        features.main(["describe"])  # no bootstrap
    with pytest.raises(SystemExit):
        features.main([*boot, "--bootstrap-controller", "h:1", "describe"])
    assert features.level_to_string("metadata.version", 99) == "UNKNOWN 99"
