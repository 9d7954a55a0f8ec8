"""A training-side reader of Collector episodes: `EpisodeDataset`, map-style, no torch needed.

    from collector.dataset import EpisodeDataset
    data = EpisodeDataset("episodes/", observation_offsets=[-1, 0], action_offsets=range(50))
    sample = data[123]  # dict of numpy arrays; torch's DataLoader collates it as it is
"""

from collector.dataset.dataset import EpisodeDataset

__all__ = ["EpisodeDataset"]
