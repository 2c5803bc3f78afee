"""MetadataApplier.min_insync_replicas: remembered per configs image, read again once a
config changes (topic, cluster default), falling back to the broker's static value."""

from __future__ import annotations

from dataclasses import replace

from broker.replication.metadata_apply import MetadataApplier
from kraft.image import ConfigResourceType, ConfigurationsImage, MetadataImage

TOPIC, BROKER = ConfigResourceType.TOPIC, ConfigResourceType.BROKER


class Applier(MetadataApplier):
    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        self.default_min_isr = 1


def with_configs(image: MetadataImage, resources: dict[tuple[int, str], dict[str, str]]
                 ) -> MetadataImage:
    return replace(image, configs=ConfigurationsImage(resources))


def test_cached_until_the_configs_change() -> None:
    image = MetadataImage()
    a = Applier(image)
    assert a.min_insync_replicas("t") == 1
    a.image = with_configs(image, {(TOPIC, "t"): {"min.insync.replicas": "2"}})
    assert a.min_insync_replicas("t") == 2 and a.min_insync_replicas("u") == 1
    # Another image with the same configs object: still the remembered values.
    a.image = replace(a.image, offset=7)
    assert a.min_insync_replicas("t") == 2
    a.image = with_configs(a.image, {(BROKER, ""): {"min.insync.replicas": "3"}})
    assert a.min_insync_replicas("t") == 3 and a.min_insync_replicas("u") == 3
    a.image = with_configs(a.image, {(TOPIC, "t"): {"min.insync.replicas": "x"}})
    assert a.min_insync_replicas("t") == 1  # unparsable: the static value
    # Two appliers do not share what they remember.
    assert Applier(MetadataImage()).min_insync_replicas("t") == 1
