<EpuSessionXml z:Id="1" z:Type="Applications.Epu.Persistence.EpuSessionXml" z:Assembly="Applications.Epu.Persistence, Version=3.9.1.8206, Culture=neutral, PublicKeyToken=null" xmlns="http://schemas.datacontract.org/2004/07/Applications.Epu.Persistence" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns:z="http://schemas.microsoft.com/2003/10/Serialization/">
  <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{session_id}}</Id>
  <AutoloaderDescription z:Id="2">{{session_name}}</AutoloaderDescription>
  <AutoloaderSlot>{{slot}}</AutoloaderSlot>
  <ClusteringMode>ClusteringWithImageBeamShift</ClusteringMode>
  <ClusteringRadius>6E-06</ClusteringRadius>
  <ImageFileFormat>Mrc</ImageFileFormat>
  <ImagedSquareCount>{{imaged}}</ImagedSquareCount>
  <MicroscopeName i:nil="true"/>
  <Name z:Ref="2" i:nil="true"/>
  <Samples z:Id="3">
    <_items z:Id="4" z:Size="4">
      <SampleXml z:Id="5">
        <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{sample_id}}</Id>
        <AtlasId z:Id="6">{{atlas_path}}</AtlasId>
        <GridSquares z:Id="7" xmlns:a="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
          <a:m_comparer z:Id="8"/>
          <a:m_serializationArray z:Size="{{square_count}}" xmlns:b="http://schemas.datacontract.org/2004/07/System.Collections.Generic">
{{#squares}}
            <b:KeyValuePairOfintSerializedReferenceOfGridSquareXml_PsqDC3X0m6koiAE_P>
              <b:key>{{gs_id}}</b:key>
              <b:value xmlns:c="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types"><c:FileName>Metadata\GridSquare_{{gs_id}}.dm</c:FileName></b:value>
            </b:KeyValuePairOfintSerializedReferenceOfGridSquareXml_PsqDC3X0m6koiAE_P>
{{/squares}}
          </a:m_serializationArray>
        </GridSquares>
        <StartDateTime>{{started}}</StartDateTime>
      </SampleXml>
      <SampleXml i:nil="true"/>
      <SampleXml i:nil="true"/>
      <SampleXml i:nil="true"/>
    </_items>
    <_size>1</_size>
    <_version>{{imaged}}</_version>
  </Samples>
  <StartDateTime>{{started}}</StartDateTime>
  <StorageFolders z:Id="9">
    <_items z:Id="10" z:Size="4">
      <StorageFolderXml z:Id="11">
        <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{folder_id}}</Id>
        <DiscId>1</DiscId>
        <Path z:Id="12">{{storage_path}}</Path>
        <SessionName z:Ref="2" i:nil="true"/>
      </StorageFolderXml>
      <StorageFolderXml i:nil="true"/>
      <StorageFolderXml i:nil="true"/>
      <StorageFolderXml i:nil="true"/>
    </_items>
    <_size>1</_size>
  </StorageFolders>
</EpuSessionXml>
