-- The PACS auto-routing rule: every CR or DX that Orthanc stores goes to the bone-age
-- service (the DicomModalities entry named "boneage"). Our SR and report image come back
-- as SR and OT/SC, so they are not routed again. tests/orthanc.py loads this same file.
function OnStoredInstance(instanceId, tags, metadata, origin)
  local modality = tags['Modality']
  if modality == 'CR' or modality == 'DX' then
    SendToModality(instanceId, 'boneage')
  end
end
