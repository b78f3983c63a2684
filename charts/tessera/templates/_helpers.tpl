{{/* The scheduler's KubeSchedulerConfiguration, as in
manifests/base/scheduler-config.yaml (mode secondary) or
manifests/default-scheduler/scheduler-config.yaml (mode default-scheduler). */}}
{{- define "tessera.schedulerConfig" -}}
{{- if not (has .Values.mode (list "secondary" "default-scheduler")) -}}
{{- fail (printf "mode: %q is not an install mode; use secondary or default-scheduler" .Values.mode) -}}
{{- end -}}
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: {{ .Values.scheduler.leaderElect }}
  resourceName: tessera-scheduler
  resourceNamespace: {{ .Release.Namespace }}
profiles:
  - schedulerName: {{ if eq .Values.mode "default-scheduler" }}default-scheduler{{ else }}{{ .Values.schedulerName }}{{ end }}
    plugins:
      # Gang orders the queue in place of PrioritySort; a scheduler has one
      # queue order.
      queueSort:
        enabled:
          - name: Gang
        disabled:
          - name: "*"
      # GPUPlacement binds the pods it gave devices to, before DefaultBinder.
      bind:
        enabled:
          - name: GPUPlacement
      # Gang preempts for pod-group members, ElasticQuota for every other pod.
      postFilter:
        enabled:
          - name: Gang
          - name: ElasticQuota
      {{- if eq .Values.mode "secondary" }}
      # Among placements GPUPlacement rates equally good, chance decides, not
      # CPU/memory spreading (docs/benchmarks.md). Their Filter checks stay.
      preScore:
        disabled:
          - name: NodeResourcesFit
          - name: NodeResourcesBalancedAllocation
      score:
        disabled:
          - name: NodeResourcesFit
          - name: NodeResourcesBalancedAllocation
      {{- end }}
      multiPoint:
        enabled:
          - name: GPUPlacement
            weight: 10
          - name: ElasticQuota
          - name: Gang
            weight: 20
        disabled:
          # ElasticQuota's PostFilter replaces upstream's preemption.
          - name: DefaultPreemption
    pluginConfig:
      {{- range $name := list "GPUPlacement" "ElasticQuota" "Gang" }}
      - name: {{ $name }}
        args:
          {{- toYaml (index $.Values.pluginArgs $name | default dict) | nindent 10 }}
      {{- end }}
{{- end -}}

{{- define "tessera.image" -}}
{{ .repository }}:{{ .tag }}
{{- end -}}
