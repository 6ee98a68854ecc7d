<GridSquareXml z:Id="1" z:Type="Applications.Epu.Persistence.GridSquareXml" z:Assembly="Applications.Epu.Persistence, Version=3.9.1.8206, Culture=neutral, PublicKeyToken=null" xmlns="http://schemas.datacontract.org/2004/07/Applications.Epu.Persistence" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns:z="http://schemas.microsoft.com/2003/10/Serialization/">
  <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{gs_id}}</Id>
  <AtlasNodeId>{{gs_id}}</AtlasNodeId>
  <GridSquareImagePath z:Id="2">{{image_path}}</GridSquareImagePath>
  <Position xmlns:a="http://schemas.datacontract.org/2004/07/Fei.SharedObjects"><a:A>0</a:A><a:B>0</a:B><a:X>{{stage_x}}</a:X><a:Y>{{stage_y}}</a:Y><a:Z>8.5E-05</a:Z></Position>
  <Rotation>0.05</Rotation>
  <Selected>true</Selected>
  <State>{{state}}</State>
  <TargetLocations z:Id="3" z:Type="Applications.Epu.Persistence.FoilHoleCollectionXml">
    <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{collection_id}}</Id>
    <GridSquareId>{{gs_id}}</GridSquareId>
    <TargetLocations i:nil="true"/>
    <TargetLocationsEfficient xmlns:a="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
      <a:m_comparer z:Id="4"/>
      <a:m_serializationArray z:Size="{{hole_count}}" xmlns:b="http://schemas.datacontract.org/2004/07/System.Collections.Generic">
{{#holes}}
        <b:KeyValuePairOfintTargetLocationXmlBpEWF4JT>
          <b:key>{{fh_id}}</b:key>
          <b:value>
            <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{fh_id}}</Id>
            <FoilHoleImagePath i:nil="true"/>
            <GridSquareId>{{gs_id}}</GridSquareId>
            <IsNearGridBar>{{near_bar}}</IsNearGridBar>
            <ParticleAcquisitions>
              <Version xmlns="">1</Version>
              <Comparer xmlns="" z:Ref="4" i:nil="true"/>
              <HashSize xmlns="">3</HashSize>
              <KeyValuePairs xmlns="" z:Size="{{exposure_count}}">
{{#exposures}}
                <b:KeyValuePairOfintParticleAcquisitionDataXmlBpEWF4JT>
                  <b:key>{{exp_id}}</b:key>
                  <b:value xmlns:c="http://schemas.datacontract.org/2004/07/Applications.Epu.Persistence">
                    <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{exp_id}}</Id>
                    <c:DataAcquisitionAreaId>{{area_id}}</c:DataAcquisitionAreaId>
                    <c:GridSquareId>{{gs_id}}</c:GridSquareId>
                    <c:Image xmlns:d="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types"><d:BaseFileName>{{base_name}}</d:BaseFileName><d:FileFormat>Mrc</d:FileFormat></c:Image>
                    <c:ImageAcquisitionSettingId>1</c:ImageAcquisitionSettingId>
                    <c:ImageFolderName>Images-Disc{{disc}}</c:ImageFolderName>
                    <c:TargetLocationId>{{fh_id}}</c:TargetLocationId>
                  </b:value>
                </b:KeyValuePairOfintParticleAcquisitionDataXmlBpEWF4JT>
{{/exposures}}
              </KeyValuePairs>
            </ParticleAcquisitions>
            <PixelCenter xmlns:c="http://schemas.datacontract.org/2004/07/System.Drawing"><c:x>{{px}}</c:x><c:y>{{py}}</c:y></PixelCenter>
            <PixelWidthHeight xmlns:c="http://schemas.datacontract.org/2004/07/System.Drawing"><c:height>52</c:height><c:width>52</c:width></PixelWidthHeight>
            <Quality>{{quality}}</Quality>
            <Rotation>0</Rotation>
            <Selected>true</Selected>
            <StagePosition xmlns:c="http://schemas.datacontract.org/2004/07/Fei.SharedObjects"><c:A>0</c:A><c:B>0</c:B><c:X>{{hole_x}}</c:X><c:Y>{{hole_y}}</c:Y><c:Z>8.5E-05</c:Z></StagePosition>
            <State>{{hole_state}}</State>
          </b:value>
        </b:KeyValuePairOfintTargetLocationXmlBpEWF4JT>
{{/holes}}
      </a:m_serializationArray>
    </TargetLocationsEfficient>
  </TargetLocations>
  <Unusable>false</Unusable>
</GridSquareXml>
