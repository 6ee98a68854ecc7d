<AtlasSessionXml xmlns="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Persistence" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns:z="http://schemas.microsoft.com/2003/10/Serialization/" z:Id="1" z:Type="Applications.SciencesAppsShared.GridAtlas.Persistence.AtlasSessionXml" z:Assembly="Applications.SciencesAppsShared.GridAtlas.Persistence, Version=1.36.1.8206, Culture=neutral, PublicKeyToken=null">
  <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{atlas_id}}</Id>
  <Atlas z:Id="2">
    <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{atlas_id}}</Id>
    <AcquisitionDateTime>{{acquired}}</AcquisitionDateTime>
    <Name i:nil="true"/>
    <TilesEfficient z:Id="3">
      <_items z:Id="4" z:Size="{{tile_count}}">
{{#tiles}}
        <TileXml>
          <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{tile_id}}</Id>
          <AtlasPixelPosition xmlns:a="http://schemas.datacontract.org/2004/07/System.Drawing"><a:height>1024</a:height><a:width>1024</a:width><a:x>{{tile_x}}</a:x><a:y>{{tile_y}}</a:y></AtlasPixelPosition>
          <Nodes xmlns:a="http://schemas.microsoft.com/2003/10/Serialization/Arrays">
            <Version xmlns="">2</Version>
            <Comparer xmlns=""/>
            <HashSize xmlns="">3</HashSize>
            <KeyValuePairs xmlns="" z:Size="{{node_count}}">
{{#nodes}}
              <KeyValuePairOfintNodeXml30oatNZW xmlns="http://schemas.datacontract.org/2004/07/System.Collections.Generic">
                <key>{{gs_id}}</key>
                <value xmlns:b="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Persistence">
                  <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{gs_id}}</Id>
                  <b:Category>1</b:Category>
                  <b:PositionOnTheAtlas xmlns:c="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Datamodel">
                    <c:Center xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:x>{{node_x}}</d:x><d:y>{{node_y}}</d:y></c:Center>
                    <c:Physical xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>4E-05</d:height><d:width>4E-05</d:width><d:x>{{stage_x}}</d:x><d:y>{{stage_y}}</d:y></c:Physical>
                    <c:Quality>1</c:Quality>
                    <c:Rotation>0.05</c:Rotation>
                    <c:Shear>0</c:Shear>
                    <c:Size xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>40</d:height><d:width>40</d:width></c:Size>
                  </b:PositionOnTheAtlas>
                  <b:StagePosition xmlns:c="http://schemas.datacontract.org/2004/07/Fei.SharedObjects"><c:A>0</c:A><c:B>0</c:B><c:X>{{stage_x}}</c:X><c:Y>{{stage_y}}</c:Y><c:Z>0</c:Z></b:StagePosition>
                  <b:TilePositions>
                    <b:_items z:Size="1">
                      <b:TilePositionXml>
                        <Id xmlns="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types">{{tile_id}}</Id>
                        <b:NodePosition xmlns:c="http://schemas.datacontract.org/2004/07/Applications.SciencesAppsShared.GridAtlas.Datamodel">
                          <c:Center xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:x>{{local_x}}</d:x><d:y>{{local_y}}</d:y></c:Center>
                          <c:Size xmlns:d="http://schemas.datacontract.org/2004/07/System.Drawing"><d:height>40</d:height><d:width>40</d:width></c:Size>
                        </b:NodePosition>
                        <b:TileId>{{tile_id}}</b:TileId>
                      </b:TilePositionXml>
                    </b:_items>
                  </b:TilePositions>
                </value>
              </KeyValuePairOfintNodeXml30oatNZW>
{{/nodes}}
            </KeyValuePairs>
          </Nodes>
          <TileImageReference xmlns:a="http://schemas.datacontract.org/2004/07/Fei.Applications.Common.Types"><a:BaseFileName>Tile_{{tile_id}}_0_{{atlas_id}}</a:BaseFileName><a:FileFormat>Mrc</a:FileFormat></TileImageReference>
        </TileXml>
{{/tiles}}
      </_items>
      <_size>{{tile_count}}</_size>
    </TilesEfficient>
  </Atlas>
  <Description i:nil="true"/>
  <Name>{{atlas_name}}</Name>
  <StorageFolder>{{storage_folder}}</StorageFolder>
</AtlasSessionXml>
