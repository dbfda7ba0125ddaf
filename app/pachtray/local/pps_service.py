"""pps_v2.API of the local server: it runs no pipelines, so there are none to show or delete.

As pachd 2.8 answers about a pipeline that does not exist: DeletePipeline succeeds (nothing to
delete) unless `must_exist`, InspectPipeline is NOT_FOUND, ListPipeline lists nothing. Creating
pipelines, jobs and datums needs workers: those RPCs answer UNIMPLEMENTED.
"""

from __future__ import annotations

from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pps

from pachtray.local.rpc import not_found


def _not_found(pipeline: pps.Pipeline):
    return not_found(f"pipeline {pipeline.project.name or 'default'}/{pipeline.name} not found")


class PpsService:
    def DeletePipeline(self, req: pps.DeletePipelineRequest, ctx) -> Empty:
        if req.must_exist and not req.all:
            raise _not_found(req.pipeline)
        return Empty()

    def InspectPipeline(self, req: pps.InspectPipelineRequest, ctx) -> pps.PipelineInfo:
        raise _not_found(req.pipeline)

    def ListPipeline(self, req: pps.ListPipelineRequest, ctx):
        return iter(())
