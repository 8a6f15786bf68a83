{{- define "runnel-operator.name" -}}
{{- default .Release.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "runnel-operator.labels" -}}
app.kubernetes.io/name: runnel-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "runnel-operator.selector" -}}
app.kubernetes.io/name: runnel-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
