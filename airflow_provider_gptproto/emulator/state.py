"""The one object that holds an emulator's mutable state, shared by routes and middleware."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import EmulatorConfig
from .faults import FaultRegistry
from .observe import RequestLog, Stats, open_log_stream
from .prompt import strip_markers
from .store import Task, TaskStore
from .video import RenderJob, VideoCache

if TYPE_CHECKING:
    from .callbacks import CallbackSender


@dataclass
class EmulatorState:
    """Settings (current and as started), tasks, fault rules, counters, log and video cache."""

    config: EmulatorConfig
    initial_config: EmulatorConfig
    store: TaskStore
    faults: FaultRegistry
    stats: Stats
    log: RequestLog
    videos: VideoCache
    callbacks: CallbackSender | None = None

    @classmethod
    def build(cls, config: EmulatorConfig) -> EmulatorState:
        store = TaskStore(config.state_file)
        store.load()
        faults = FaultRegistry(config.fault_seed)
        for rule in config.faults:
            faults.add(rule)
        return cls(
            config=config,
            initial_config=config.copy(),
            store=store,
            faults=faults,
            stats=Stats(),
            log=RequestLog(open_log_stream(config.log_file, config.quiet)),
            videos=VideoCache(config.cache_dir),
        )

    def render_job(self, task: Task) -> RenderJob:
        spec = task.spec
        return RenderJob(
            width=spec.width,
            height=spec.height,
            seconds=spec.seconds,
            fps=self.config.render_fps,
            prompt=strip_markers(spec.prompt),
            seed=task.seed,
            model=spec.model,
            watermark=spec.watermark,
            first_frame=task.first_frame,
        )

    def reset(self) -> None:
        """Back to a fresh start: no tasks, no counters, no rules, the settings the server started with."""
        self.store.clear()
        self.stats.reset()
        self.log.clear()
        self.faults.reset()
        if self.callbacks is not None:
            self.callbacks.reset()
        self.config.__dict__.update(self.initial_config.copy().__dict__)

    def close(self) -> None:
        self.store.save()
        self.videos.close()
        stream = self.log.stream
        if stream is not None and self.config.log_file:
            stream.close()
