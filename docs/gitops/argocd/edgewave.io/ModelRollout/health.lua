-- Argo CD health check for edgewave.io/ModelRollout.
-- Reads the same signals as `kubectl wait --for=condition=Ready` and kstatus:
-- status.observedGeneration, and the Ready / Degraded conditions with their observedGeneration.
--   Degraded:    Degraded=True, or phase RollingBack / RolledBack / Failed (current generation)
--   Suspended:   spec.strategy.paused is true
--   Healthy:     Ready=True and the operator has observed the current generation
--   Progressing: anything else (not yet observed, rolling out, between waves)
local hs = {}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
local paused = obj.spec ~= nil and obj.spec.strategy ~= nil and obj.spec.strategy.paused == true

-- A condition speaks for the current spec only when it was written for this generation.
local function current(c)
  if c == nil then
    return false
  end
  local observed = c.observedGeneration
  if observed == nil and status ~= nil then
    observed = status.observedGeneration
  end
  return observed ~= nil and observed >= generation
end

if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  if paused then
    hs.status = "Suspended"
    hs.message = "Rollout is paused (spec.strategy.paused)"
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" and current(degraded) then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Rollout is degraded")
  return hs
end
local phase = status.phase
if phase == "RollingBack" or phase == "RolledBack" or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Rollout phase is " .. phase)
  return hs
end

if paused then
  hs.status = "Suspended"
  hs.message = "Rollout is paused (spec.strategy.paused)"
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" and current(ready) then
  hs.status = "Healthy"
  hs.message = describe(ready, "Rollout is ready")
  return hs
end

hs.status = "Progressing"
local progressing = condition(status, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.message = describe(progressing, "Rollout is progressing")
elseif status.phase ~= nil then
  hs.message = "Rollout phase is " .. status.phase
else
  hs.message = "Rollout is progressing"
end
return hs
