{{/*
Names. The snapshot Service must be `tollgate-controller` in the release namespace: the
controller issues its serving certificate for tollgate-controller.{namespace}.svc, and every
proxy fleet dials https://tollgate-controller.{namespace}.svc:9443. The other namespaced
objects follow it. Cluster-scoped objects carry the namespace, so that releases in two
namespaces do not collide.
*/}}
{{- define "tollgate.name" -}}tollgate-controller{{- end }}

{{- define "tollgate.clusterName" -}}tollgate-controller-{{ .Release.Namespace }}{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: tollgate-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.labels" -}}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tollgate
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "tollgate.image" -}}
{{ .image.repository }}:{{ .image.tag | default .appVersion }}
{{- end }}
